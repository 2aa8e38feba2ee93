"""The dataset sources robrank builds from a user's image folders.

``imagefolder`` serves 224x224 RGB images with the reference code's CUB/Cars/SOP transforms
(train: Resize(256, 256) -> RandomCrop(224) -> RandomHorizontalFlip; test: Resize(256, 256)
-> CenterCrop(224)), read from disk per batch, for ResNet-style backbones and the rob224
swipe profile. ``imagefolder28`` serves 28x28 greyscale images (resized once, no
augmentation, as the reference's MNIST pipeline), held in memory as uint8 so that robrank's
training engine gathers batches with one indexing op, for ``c2f2``/``lenet`` and rob28.
Pixels are in [0, 1] either way and never mean/std-normalised: backbones do that, so attacks
perturb real pixels.
"""
from __future__ import annotations

from pathlib import Path

import torch

from robrank.plugin_api import ConfigError, DataError, DatasetSource, FileImageDataset, ImageDataset, TensorImageDataset

from .folders import SPLITS, FolderTree, layout_of, scan

#: a subfolder of the data root that is also searched, so ``$ROBRANK_DATA/imagefolder`` works
SUBDIR = "imagefolder"
LAYOUT_HINT = "DIR/<class>/*.jpg (split by class) or DIR/train/<class>/*.jpg + DIR/test/<class>/*.jpg"


def _holds_images(path: Path) -> bool:
    """Cheap presence test: a class layout whose first class folder has an image file."""
    from .folders import IMAGE_SUFFIXES, _class_dirs

    layout = layout_of(path)
    if layout is None:
        return False
    base = path / "train" if layout == "split" else path
    if not base.is_dir():
        return True  # half a split layout: let scan() name the missing half
    dirs = _class_dirs(base)
    return bool(dirs) and any(p.suffix.lower() in IMAGE_SUFFIXES for p in dirs[0].rglob("*"))


class ImageFolderSource(DatasetSource):
    """A user's image tree at 224x224 RGB (see :mod:`robrank_mydataset.folders` for the layout)."""

    name = "imagefolder"
    image_size = 224
    channels = 3
    verify_is_slow = True  # verify opens every image

    def __init__(self, root: Path | None = None) -> None:
        super().__init__(Path(root).expanduser() if root is not None else None)
        self._trees: dict[Path, FolderTree] = {}

    def search_paths(self) -> list[Path]:
        if self.root is None:
            return []
        # the subfolder first: a data root shared with other datasets is not itself a class tree
        return [self.root / SUBDIR, self.root]

    def is_present(self, path: Path) -> bool:
        return _holds_images(path)

    def missing_message(self, paths: list[Path]) -> str:
        if not paths:
            return f"dataset {self.name!r} reads your own images: pass --data-root DIR with {LAYOUT_HINT}"
        return f"dataset {self.name!r} found no image folders in {', '.join(map(str, paths))}; {self.how_to_get()}"

    def how_to_get(self) -> str:
        return f"Pass --data-root DIR (or set ROBRANK_DATA) with {LAYOUT_HINT}."

    def tree(self, path: Path | None = None) -> FolderTree:
        """The scanned tree (scanned once per source and directory)."""
        path = self.locate() if path is None else path
        if path not in self._trees:
            self._trees[path] = scan(path)
        return self._trees[path]

    @property
    def num_test_classes(self) -> int:
        """k of NMI's k-means: the class folders of the test split, counted from the tree."""
        return self.tree().test.num_classes

    def load_split(self, split: str, augment: bool = False) -> ImageDataset:
        from robrank.plugin_api import reference_transform  # loads torchvision: only when a split is read

        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        entry = self.tree().split(split)
        transform = reference_transform(train=augment, size=self.image_size)
        return FileImageDataset(entry.paths, entry.labels, transform, image_size=self.image_size, channels=self.channels)

    def verify(self, path: Path) -> str:
        """Every image opens and decodes; reports the counts the run will use."""
        from PIL import Image, UnidentifiedImageError

        tree = scan(path)
        for split in SPLITS:
            for image in tree.split(split).paths:
                try:
                    with Image.open(image) as handle:
                        handle.load()
                except (UnidentifiedImageError, OSError) as exc:
                    raise DataError(f"image file {image} is not a readable image ({exc}); fix or remove it") from None
        train, test = tree.train, tree.test
        return (
            f"{tree.layout} layout: {len(train.paths)} train images / {train.num_classes} classes, "
            f"{len(test.paths)} test images / {test.num_classes} classes, all readable"
        )


class ImageFolder28Source(ImageFolderSource):
    """The same tree as 28x28 greyscale, decoded once into memory (MNIST-sized models)."""

    name = "imagefolder28"
    image_size = 28
    channels = 1
    verify_is_slow = True

    def __init__(self, root: Path | None = None) -> None:
        super().__init__(root)
        self._splits: dict[tuple[Path, str], TensorImageDataset] = {}

    def load_split(self, split: str, augment: bool = False) -> ImageDataset:
        """The split as uint8 in memory; ``augment`` changes nothing (no augmentation at 28 px)."""
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        path = self.locate()
        key = (path, split)
        if key not in self._splits:
            entry = self.tree(path).split(split)
            images = torch.stack([self._decode(p) for p in entry.paths])
            self._splits[key] = TensorImageDataset(images, torch.tensor(entry.labels, dtype=torch.int64))
        return self._splits[key]

    def _decode(self, path: Path) -> torch.Tensor:
        import numpy as np
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as handle:
                grey = handle.convert("L").resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"image file {path} is not a readable image ({exc}); fix or remove it") from None
        return torch.from_numpy(np.asarray(grey, dtype=np.uint8).copy()).unsqueeze(0)
