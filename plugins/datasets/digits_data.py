"""scikit-learn's bundled 8x8 handwritten digits, upsampled to 28x28: the dataset that needs no files.

It ships inside scikit-learn (a robrank dependency), so the quickstart, the tests and a
first ``robrank run`` work with no download at all, with the same shape as MNIST (1 x 28 x
28, 10 classes) and hence the same backbones and the ``rob28`` profile.

Images: the 1,797 images of ``sklearn.datasets.load_digits`` (values 0..16) scaled to [0, 1],
resized to 28 x 28 with bilinear interpolation (``torch.nn.functional.interpolate``,
``align_corners=False``, antialias on), then stored as uint8 (round(255 * x)).

Split (deterministic, stratified): within each class, in the dataset's order, every 5th
image (positions 0, 5, 10, ...) goes to test and the rest to train: 1,433 train / 364 test.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robrank.plugin_api import DataError, DatasetSource, ImageDataset, TensorImageDataset, check_split

SIZE = 28
TEST_EVERY = 5
NUM_IMAGES = 1797


def digits_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 images as uint8 N x 1 x 28 x 28 and their labels, in scikit-learn's order."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32)).unsqueeze(1) / 16.0
    large = torch.nn.functional.interpolate(small, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)
    images = (large.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return images, torch.from_numpy(np.asarray(bunch.target)).to(torch.int64)


def split_mask(labels: torch.Tensor, every: int = TEST_EVERY) -> torch.Tensor:
    """True for test items: positions 0, every, 2*every, ... within each class, in order."""
    rank = torch.empty_like(labels)
    for klass in torch.unique(labels):
        members = torch.nonzero(labels == klass).flatten()
        rank[members] = torch.arange(members.numel())
    return rank % every == 0


class DigitsSource(DatasetSource):
    name = "digits"

    def __init__(self, root: Path | None = None) -> None:
        super().__init__(root)  # the data root is irrelevant: the images ship with scikit-learn
        self._arrays: tuple[torch.Tensor, torch.Tensor] | None = None

    def search_paths(self) -> list[Path]:
        import sklearn.datasets

        return [Path(sklearn.datasets.__file__).parent / "data"]

    def is_present(self, path: Path) -> bool:
        return True  # bundled with scikit-learn, which robrank requires

    def how_to_get(self) -> str:
        return "It ships with scikit-learn: pip install scikit-learn."

    def install_dir(self, root: Path | None = None) -> Path:
        return self.search_paths()[0]

    def _load(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._arrays is None:
            self._arrays = digits_arrays()
        return self._arrays

    def load_split(self, split: str, augment: bool = False) -> ImageDataset:
        """``augment`` changes nothing: like MNIST, no augmentation."""
        check_split(split)
        images, labels = self._load()
        mask = split_mask(labels)
        keep = mask if split == "test" else ~mask
        return TensorImageDataset(images[keep].clone(), labels[keep].clone())

    def verify(self, path: Path) -> str:
        try:
            images, labels = self._load()
        except Exception as exc:  # a broken scikit-learn install
            raise DataError(f"scikit-learn's digits could not be loaded ({exc}); reinstall scikit-learn") from None
        if images.shape != (NUM_IMAGES, 1, SIZE, SIZE) or sorted(torch.unique(labels).tolist()) != list(range(10)):
            raise DataError(f"scikit-learn's digits have shape {tuple(images.shape)}, expected {NUM_IMAGES} images of 10 classes")
        test = int(split_mask(labels).sum())
        return f"{NUM_IMAGES - test} train / {test} test images (from scikit-learn)"

    def download(self, dest: Path) -> Path:
        return self.search_paths()[0]  # nothing to fetch
