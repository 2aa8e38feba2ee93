"""What a dataset plugin provides.

A dataset plugin registers a :class:`~robrank.records.DatasetRecord` whose factory returns a
:class:`DatasetSource`. The source knows where the files may live, can verify them, and
builds the train and test splits as :class:`ImageDataset` objects that yield pixels in
[0, 1] (normalisation belongs to the backbone, so attacks work in pixel space). The batch
layouts of the reference code (classification, SPC-2 pairs, triplets) are built *on top of*
these splits by :mod:`robrank.data.kinds`, so a new dataset gets all of them for free.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..errors import DataError

ENV_DATA = "ROBRANK_DATA"


def data_root_from_env(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The user's data root: ``--data-root`` if given, else ``$ROBRANK_DATA``, else None."""
    if explicit:
        return Path(explicit).expanduser()
    value = os.environ.get(ENV_DATA)
    return Path(value).expanduser() if value else None


class ImageDataset(torch.utils.data.Dataset):
    """A split: images in [0, 1] as C x H x W float tensors, with integer labels.

    ``labels`` is always a 1-D int64 tensor so that samplers (SPC-2 partners, triplets) can
    work on it vectorised without touching images.
    """

    labels: torch.Tensor
    image_size: int
    channels: int

    def __len__(self) -> int:
        return int(self.labels.numel())

    @abstractmethod
    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]: ...

    def images(self, indices: torch.Tensor) -> torch.Tensor:
        """A stacked batch of images; subclasses override it with a vectorised version."""
        return torch.stack([self[int(i)][0] for i in indices])

    @property
    def num_classes(self) -> int:
        return int(torch.unique(self.labels).numel())


class TensorImageDataset(ImageDataset):
    """A split held in memory as uint8 (N x C x H x W); used by the 28x28 datasets.

    Holding uint8 keeps MNIST at 47 MB and lets training move the whole split to the GPU and
    gather batches with one indexing op instead of a Python loop per item.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError("TensorImageDataset wants uint8 images of shape N x C x H x W")
        if labels.numel() != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {labels.numel()} labels")
        self.data = images
        self.labels = labels.to(torch.int64)
        self.channels = images.shape[1]
        self.image_size = images.shape[-1]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.data[index].float().div_(255.0), int(self.labels[index])

    def images(self, indices: torch.Tensor) -> torch.Tensor:
        return self.data[indices.to(self.data.device)].float().div_(255.0)


class FileImageDataset(ImageDataset):
    """A split read from image files on demand (CUB, Cars, SOP, user folders)."""

    def __init__(
        self,
        paths: Sequence[Path],
        labels: Sequence[int] | torch.Tensor,
        transform: Callable[[object], torch.Tensor],
        image_size: int = 224,
        channels: int = 3,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        if len(self.paths) != self.labels.numel():
            raise ValueError(f"{len(self.paths)} paths but {self.labels.numel()} labels")
        self.transform = transform
        self.image_size = image_size
        self.channels = channels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image, UnidentifiedImageError  # lazy: only image-file datasets decode with Pillow

        path = self.paths[index]
        try:
            with Image.open(path) as image:
                tensor = self.transform(image.convert("RGB"))
        except FileNotFoundError as exc:
            raise DataError(f"image file {path} is missing; re-extract the dataset archive") from exc
        except (UnidentifiedImageError, OSError) as exc:
            # the exception's own text repeats the (long) path: its type says enough
            raise DataError(f"image file {path} is corrupt or truncated ({type(exc).__name__}); re-extract the dataset archive") from exc
        return tensor, int(self.labels[index])


class DatasetSource(ABC):
    """Locates, verifies, downloads and loads one dataset."""

    #: registry name, e.g. "mnist"
    name: str = ""
    #: verifying reads every image file (CUB, Cars, SOP): ``robrank data list --verify``
    #: leaves it to ``robrank data check NAME``
    verify_is_slow: bool = False

    def __init__(self, root: Path | None = None) -> None:
        self.root = root

    @abstractmethod
    def search_paths(self) -> list[Path]:
        """Every directory the files are looked for in, in order (shown by ``robrank data list``)."""

    @abstractmethod
    def is_present(self, path: Path) -> bool:
        """Whether ``path`` holds the dataset's files (cheap: existence, not content)."""

    def locate(self) -> Path:
        """The first search path that holds the files; a one-line error saying where they go otherwise."""
        paths = self.search_paths()
        for path in paths:
            if self.is_present(path):
                return path
        raise DataError(self.missing_message(paths))

    def missing_message(self, paths: list[Path]) -> str:
        where = self.install_dir(self.root)
        return (
            f"dataset {self.name!r} not found; looked in {', '.join(map(str, paths))}. "
            f"{self.how_to_get()} Put the files in {where} or pass --data-root DIR."
        )

    def how_to_get(self) -> str:
        """One sentence on how a user obtains the files."""
        return "Obtain the dataset files from their official source."

    def install_dir(self, root: Path | None = None) -> Path:
        """Where a download (or the user) should put the files, given a data root (or None)."""
        paths = self.search_paths()
        if paths:
            return paths[0]
        return Path(root) if root is not None else Path.home() / ".torch" / self.name

    @abstractmethod
    def verify(self, path: Path) -> str | None:
        """Check the files' content (sizes, headers, checksums); raise DataError naming the bad file.

        May return a one-line summary of what was checked (``robrank data check`` prints it).
        """

    @abstractmethod
    def load_split(self, split: str, augment: bool = False) -> ImageDataset:
        """The ``train`` or ``test`` split; ``augment`` enables the training transforms."""

    def download(self, dest: Path) -> Path:
        """Fetch the files into ``dest``; datasets without a public mirror say where to get them."""
        raise DataError(f"dataset {self.name!r} has no automatic download. {self.how_to_get()} Put the files in {dest}.")
