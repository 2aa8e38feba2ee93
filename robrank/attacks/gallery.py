"""The candidate set every ranking attack measures against: the clean test split, embedded once.

The reference recomputed these embeddings for each attack (and reloaded the checkpoint per
attack during a swipe). A :class:`Gallery` is computed once and shared by every attack of a
swipe; it is immutable, so attacks can never perturb it by accident.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any
import copy

import torch
from torch import nn

from ..models.modes import attack_mode, embed
from ..data.base import ImageDataset
from ..data.base import TensorImageDataset
from ..metrics import require_finite_embeddings
from ..metrics import top_tie_share
from ..runtime import default_num_workers

#: in-memory splits up to this size are copied to an accelerator once per swipe/attack
DEVICE_DATASET_BYTES = 4 << 30


def device_dataset(dataset: Any, device: str | torch.device, max_bytes: int = DEVICE_DATASET_BYTES) -> Any:
    """The split with its pixels on ``device`` when it is an in-memory uint8 split that fits.

    MNIST's 10,000 test images are 7.8 MB as uint8: holding them on the GPU turns every
    attack batch into one gather on the device instead of a host gather plus a copy (which
    also synchronises the host with the GPU once per batch). Other datasets are returned as
    they are. The copy shares everything but ``data`` with the original (name, labels, ...).
    """
    device = torch.device(device)
    if device.type == "cpu" or not isinstance(dataset, TensorImageDataset):
        return dataset
    data = dataset.data
    if data.device == device or data.numel() * data.element_size() > max_bytes:
        return dataset
    moved = copy.copy(dataset)
    moved.data = data.to(device, non_blocking=True)
    return moved


def vectorised(dataset: Any) -> bool:
    """Whether ``dataset.images(index)`` gathers a batch in one op (in-memory or synthetic splits)."""
    images = getattr(type(dataset), "images", None)
    return images is not None and images is not ImageDataset.images


def default_workers() -> int:
    return default_num_workers()


def iter_images(
    dataset: Any, batches: Sequence[torch.Tensor], device: str | torch.device, num_workers: int | None = None
) -> Iterator[torch.Tensor]:
    """The images of each index batch, on ``device``, in order.

    Vectorised splits gather directly (on the device when :func:`device_dataset` moved
    them); file splits (JPEG: CUB, Cars, SOP) decode in ``num_workers`` DataLoader workers
    into pinned memory, so decoding overlaps the attack of the previous batch and the copy
    to the GPU is asynchronous.
    """
    device = torch.device(device)
    if vectorised(dataset) or not batches:
        for index in batches:
            yield dataset.images(index).to(device, non_blocking=True)
        return
    workers = default_workers() if num_workers is None else int(num_workers)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=[b.tolist() for b in batches],
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers > 0 else None,
    )
    for images, _labels in loader:
        yield images.to(device, non_blocking=True)


def default_eval_batch(image_size: int, device: str | torch.device) -> int:
    if torch.device(device).type == "cuda":
        return 1024 if image_size <= 64 else 256
    return 512 if image_size <= 64 else 32


@dataclass(frozen=True)
class Gallery:
    """Clean embeddings (``[N, D]``, normalised for ``metric``) and labels (``[N]``) of a split."""

    embeddings: torch.Tensor
    labels: torch.Tensor
    metric: str

    def __len__(self) -> int:
        return int(self.labels.numel())

    @cached_property
    def top_ties(self) -> float:
        """Share of items whose two nearest other items are at one distance (computed once per gallery)."""
        return top_tie_share(self.embeddings, self.metric)

    @property
    def device(self) -> torch.device:
        return self.embeddings.device

    def to(self, device: str | torch.device) -> Gallery:
        device = torch.device(device)
        if self.embeddings.device == device and self.labels.device == device:
            return self
        return Gallery(self.embeddings.to(device), self.labels.to(device), self.metric)

    @classmethod
    @torch.no_grad()
    def compute(
        cls,
        model: nn.Module,
        dataset: torch.utils.data.Dataset,
        batch_size: int | None = None,
        device: str | torch.device = "cpu",
    ) -> Gallery:
        """Embed the whole ``dataset`` (an ImageDataset) with ``model`` in eval mode."""
        n = len(dataset)
        batch_size = batch_size or default_eval_batch(getattr(dataset, "image_size", 28), device)
        batches = [torch.arange(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
        chunks = []
        with attack_mode(model):
            for images in iter_images(dataset, batches, device):
                chunks.append(embed(model, images).detach())
        embeddings = torch.cat(chunks) if chunks else torch.empty(0, 0, device=device)

        require_finite_embeddings(embeddings)  # attacking a broken model would print numbers that mean nothing
        return cls(embeddings, dataset.labels.to(device), model.metric)
