"""Reading a user's image folders: the layout rules, in one place.

Two layouts are accepted, chosen by what is on disk:

* **split** — ``<root>/train/<class>/<image>`` and ``<root>/test/<class>/<image>``. The
  folders are used as they are; a class may appear in both splits (a classification-style
  split) or in one only (a zero-shot split).
* **single** — ``<root>/<class>/<image>`` with no ``train``/``test`` folders. The classes are
  sorted by folder name and split *by class*, as deep-metric-learning benchmarks do
  (CUB, Cars, SOP): the first half (rounded up) trains, the rest tests. Splitting by class
  rather than by image keeps the retrieval zero-shot, and sorting makes the split the same
  on every machine, whatever order the file system lists folders in.

Labels are the position of the class folder name in the sorted list of *all* class names of
the tree, so a class keeps its label across splits. Images are the files whose suffix PIL
usually reads (``.jpg``, ``.png``, ...), found recursively below each class folder, sorted by
path; hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``) are ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robrank.plugin_api import DataError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
SPLITS = ("train", "test")
#: at least this many classes per split: a triplet needs a negative class, and retrieval
#: metrics are meaningless with a single class
MIN_CLASSES = 2


@dataclass(frozen=True)
class Split:
    paths: tuple[Path, ...]
    labels: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return len(set(self.labels))


@dataclass(frozen=True)
class FolderTree:
    """A scanned tree: its layout, every class name (label = position) and both splits."""

    root: Path
    layout: str  # "split" or "single"
    classes: tuple[str, ...]
    train: Split
    test: Split

    def split(self, name: str) -> Split:
        return self.train if name == "train" else self.test


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p))


def _images(class_dir: Path) -> list[Path]:
    found = []
    for path in class_dir.rglob("*"):
        hidden = any(part.startswith(".") for part in path.relative_to(class_dir).parts)
        if not hidden and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.append(path)
    return sorted(found)


def layout_of(root: Path) -> str | None:
    """``"split"``, ``"single"``, or None when ``root`` holds no class folder at all."""
    if not root.is_dir():
        return None
    if (root / "train").is_dir() and (root / "test").is_dir():
        return "split"
    if (root / "train").is_dir() or (root / "test").is_dir():
        return "split"  # half a split layout: scan() says which half is missing
    return "single" if _class_dirs(root) else None


def scan(root: Path) -> FolderTree:
    """Read the tree under ``root``; a DataError (one line, naming the folder) if unusable."""
    root = Path(root)
    layout = layout_of(root)
    if layout is None:
        raise DataError(
            f"{root} holds no class folders; put images in {root}/<class>/*.jpg, "
            f"or in {root}/train/<class>/*.jpg and {root}/test/<class>/*.jpg"
        )
    if layout == "split":
        for name in SPLITS:
            if not (root / name).is_dir():
                other = "test" if name == "train" else "train"
                raise DataError(f"{root} has a {other}/ folder but no {name}/ folder; add {root}/{name}/<class>/ or use one <class>/ tree")
        per_split = {name: {d.name: _images(d) for d in _class_dirs(root / name)} for name in SPLITS}
    else:
        dirs = _class_dirs(root)
        n_train = len(dirs) - len(dirs) // 2  # first half, rounded up
        per_split = {
            "train": {d.name: _images(d) for d in dirs[:n_train]},
            "test": {d.name: _images(d) for d in dirs[n_train:]},
        }
    for name, classes in per_split.items():
        where = root / name if layout == "split" else root
        empty = [c for c, images in classes.items() if not images]
        if empty:
            raise DataError(
                f"class folder {where / empty[0]} holds no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))}); "
                "add images or remove the folder"
            )
        if len(classes) < MIN_CLASSES:
            hint = (
                f"a single <class>/ tree needs at least {2 * MIN_CLASSES} class folders (it is split by class)"
                if layout == "single"
                else f"add class folders to {where}"
            )
            raise DataError(f"the {name} split of {root} has {len(classes)} class(es), at least {MIN_CLASSES} are needed; {hint}")
    classes = tuple(sorted(set(per_split["train"]) | set(per_split["test"])))
    label = {name: i for i, name in enumerate(classes)}

    def split(name: str) -> Split:
        pairs = sorted((path, label[cls]) for cls, images in per_split[name].items() for path in images)
        return Split(tuple(p for p, _ in pairs), tuple(y for _, y in pairs))

    return FolderTree(root=root, layout=layout, classes=classes, train=split("train"), test=split("test"))
