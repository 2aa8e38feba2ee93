"""The candidate set every ranking attack measures against: the clean test split, embedded once.

The reference recomputed these embeddings for each attack (and reloaded the checkpoint per
attack during a swipe). A :class:`Gallery` is computed once and shared by every attack of a
swipe; it is immutable, so attacks can never perturb it by accident.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..distances import embed_for_metric


def embed(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Metric-normalised embeddings (the reference's ``forwardmetric``)."""
    if hasattr(model, "embed"):
        return model.embed(images)
    return embed_for_metric(model(images), model.metric)


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
        from .base import attack_mode

        n = len(dataset)
        batch_size = batch_size or default_eval_batch(getattr(dataset, "image_size", 28), device)
        chunks = []
        with attack_mode(model):
            for start in range(0, n, batch_size):
                index = torch.arange(start, min(start + batch_size, n))
                images = dataset.images(index).to(device, non_blocking=True)
                chunks.append(embed(model, images).detach())
        embeddings = torch.cat(chunks) if chunks else torch.empty(0, 0, device=device)
        return cls(embeddings, dataset.labels.to(device), model.metric)
