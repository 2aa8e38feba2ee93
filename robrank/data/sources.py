"""Reusable dataset sources: IDX datasets (MNIST-like) and zero-shot image trees (CUB-like).

The bundled plugins are a few lines of metadata on top of these classes, and a third-party
plugin for, say, KMNIST or In-Shop Clothes can subclass them the same way.
"""
from __future__ import annotations

import hashlib
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, DataError
from .base import DatasetSource, FileImageDataset, ImageDataset, TensorImageDataset
from .download import Digests, download_file
from .idx import MAGIC_IMAGES_U8, MAGIC_LABELS_U8, check_idx, read_bytes
from .download import DEFAULT_TIMEOUT
from .transforms import reference_transform

SPLITS: tuple[str, ...] = ("train", "test")


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return split


def torch_home() -> Path:
    """``~/.torch``: where the reference code keeps every dataset (the reference)."""
    return Path.home() / ".torch"


def _unique(paths: Sequence[Path]) -> list[Path]:
    seen: set[Path] = set()
    out = []
    for p in paths:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


# --------------------------------------------------------------------------------------------
# IDX datasets


@dataclass(frozen=True)
class IdxFile:
    """One IDX file: its name without ``.gz`` and its published md5s."""

    name: str
    content_md5: str  # md5 of the uncompressed file, as the dataset's authors publish it
    gz_md5: str = ""  # md5 of the canonical mirror's .gz (mirrors may recompress); see IdxSource.torchvision


@dataclass(frozen=True)
class IdxSplit:
    images: IdxFile
    labels: IdxFile
    count: int


class IdxSource(DatasetSource):
    """A dataset shipped as IDX image/label files per split, held in memory as uint8.

    Looked for, in order: the data root itself, ``root_subdirs`` under it, ``home_subdirs``
    under ``~/.torch`` (the reference layout), then ``system_dirs``. In each directory a
    file may be raw or gzipped (the raw one wins when both exist: it loads faster).
    Loading validates headers and sizes but never hashes; :meth:`verify` compares the md5
    of each file's uncompressed content with the published one.

    Downloads come from ``mirrors`` or, when empty, from the torchvision dataset class named
    by ``torchvision`` (``torchvision.datasets.<name>``): its ``mirrors`` and the md5s of its
    ``resources`` (the ``.gz`` files), so the URLs and checksums torchvision maintains are not
    copied here. It is imported only when downloading: importing ``torchvision.datasets``
    takes seconds, which ``robrank list`` should not pay.
    """

    root_subdirs: tuple[str, ...] = ()
    home_subdirs: tuple[str, ...] = ()
    system_dirs: tuple[str, ...] = ()
    splits: dict[str, IdxSplit] = {}
    image_size: int = 28
    num_classes: int = 10
    mirrors: tuple[str, ...] = ()  # base URLs, each serving <name>.gz (empty: torchvision's)
    torchvision: str = ""  # torchvision.datasets class whose mirrors and .gz md5s to use
    homepage: str = ""

    def __init__(self, root: Path | None = None) -> None:
        super().__init__(Path(root).expanduser() if root is not None else None)
        self._cache: dict[tuple[Path, str], tuple[torch.Tensor, torch.Tensor]] = {}

    # where --------------------------------------------------------------------------------
    def search_paths(self) -> list[Path]:
        paths: list[Path] = []
        if self.root is not None:
            paths.append(self.root)
            paths.extend(self.root / sub for sub in self.root_subdirs)
        paths.extend(torch_home() / sub for sub in self.home_subdirs)
        paths.extend(Path(d) for d in self.system_dirs)
        return _unique(paths)

    def install_dir(self, root: Path | None = None) -> Path:
        if root is not None:
            return Path(root).expanduser() / self.root_subdirs[0]
        return torch_home() / self.home_subdirs[0]

    def files(self) -> list[IdxFile]:
        return [f for s in self.splits.values() for f in (s.images, s.labels)]

    @staticmethod
    def find(directory: Path, name: str) -> Path | None:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                return candidate
        return None

    def is_present(self, path: Path) -> bool:
        return all(self.find(path, f.name) is not None for f in self.files())

    def missing_message(self, paths: list[Path]) -> str:
        for path in paths:  # a half-filled directory deserves a precise message
            found = [f.name for f in self.files() if self.find(path, f.name) is not None]
            if found:
                lacking = [f"{f.name}[.gz]" for f in self.files() if f.name not in found]
                return (
                    f"dataset {self.name!r} is incomplete in {path}: missing {', '.join(lacking)}. "
                    f"{self.how_to_get()}"
                )
        return super().missing_message(paths)

    def how_to_get(self) -> str:
        names = ", ".join(f"{f.name}.gz" for f in self.files())
        source = f" from {self.homepage}" if self.homepage else ""
        return f"Run `robrank data download {self.name}` or fetch {names}{source}."

    def _hint(self) -> str:
        return f"re-download it with `robrank data download {self.name}`"

    # read ---------------------------------------------------------------------------------
    def _read(self, path: Path, split: str, digests: dict[str, str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The split's tensors; with ``digests``, also the md5 of each file's content (same read)."""
        key = (path, split)
        if key in self._cache and digests is None:
            return self._cache[key]
        spec = self.splits[split]
        size, hint = self.image_size, self._hint()
        arrays = []
        for f, magic, shape in (
            (spec.images, MAGIC_IMAGES_U8, (spec.count, size, size)),
            (spec.labels, MAGIC_LABELS_U8, (spec.count,)),
        ):
            found = self.find(path, f.name)
            if found is None:
                raise DataError(self.missing_message([path]))
            data = read_bytes(found, hint)
            if digests is not None:
                digests[f.name] = hashlib.md5(data).hexdigest()
            arrays.append(check_idx(data, found, magic=magic, shape=shape, hint=hint))
        images, labels = arrays
        top = int(labels.max()) if labels.size else 0
        if top >= self.num_classes:
            label_file = self.find(path, spec.labels.name)
            raise DataError(f"file {label_file} holds label {top}, expected 0..{self.num_classes - 1}; {hint}")
        self._cache[key] = (
            torch.from_numpy(images).view(spec.count, 1, size, size),
            torch.from_numpy(labels).to(torch.int64),
        )
        return self._cache[key]

    def load_split(self, split: str, augment: bool = False) -> ImageDataset:
        """The split as uint8 in memory. ``augment`` changes nothing: the reference uses none here."""
        check_split(split)
        images, labels = self._read(self.locate(), split)
        return TensorImageDataset(images, labels)

    def verify(self, path: Path) -> str:
        """Headers, sizes and label range as loading checks them, plus the md5 of every file's content."""
        digests: dict[str, str] = {}
        for split in self.splits:
            self._read(path, split, digests)
        for f in self.files():
            if digests[f.name] != f.content_md5:
                raise DataError(
                    f"file {self.find(path, f.name)} has the wrong content (md5 {digests[f.name]}, "
                    f"expected {f.content_md5}); {self._hint()}"
                )
        counts = " / ".join(f"{s.count} {name}" for name, s in self.splits.items())
        return f"{counts} images, md5 of all {len(self.files())} files verified"

    # download -----------------------------------------------------------------------------
    def _torchvision_class(self) -> Any:
        if not self.torchvision:
            return None
        import torchvision.datasets  # lazy: takes seconds to import, which `robrank list` should not pay

        return getattr(torchvision.datasets, self.torchvision)

    def mirror_urls(self) -> tuple[str, ...]:
        """Base URLs to download from: ``mirrors``, else the torchvision class's."""
        if self.mirrors:
            return tuple(self.mirrors)
        found = self._torchvision_class()
        return tuple(getattr(found, "mirrors", ()) or ()) if found is not None else ()

    def gz_md5(self, f: IdxFile) -> str:
        """The md5 of the canonical ``<name>.gz``: the file's own, else torchvision's."""
        if f.gz_md5:
            return f.gz_md5
        found = self._torchvision_class()
        resources = dict(getattr(found, "resources", ()) or ()) if found is not None else {}
        return str(resources.get(f"{f.name}.gz", ""))

    def _acceptor(self, f: IdxFile):
        gz_md5 = self.gz_md5(f)

        def accept(d: Digests) -> str | None:
            if (gz_md5 and d.md5 == gz_md5) or d.content_md5 == f.content_md5:
                return None
            if d.content_md5 is None:
                return f"not a complete gzip file (md5 {d.md5})"
            return f"checksum mismatch (content md5 {d.content_md5}, expected {f.content_md5})"

        return accept

    def download(self, dest: Path, *, progress: bool = False, timeout: float | None = None) -> Path:
        """Fetch the missing or damaged files into ``dest`` from the first mirror that works."""
        mirrors = self.mirror_urls()
        if not mirrors:
            return super().download(dest)
        dest = Path(dest)
        for f in self.files():
            existing = self.find(dest, f.name)
            if existing is not None:
                try:
                    if hashlib.md5(read_bytes(existing)).hexdigest() == f.content_md5:
                        continue
                except DataError:
                    pass  # damaged: fetch it again
            urls = [f"{base.rstrip('/')}/{f.name}.gz" for base in mirrors]
            download_file(
                urls,
                dest / f"{f.name}.gz",
                accept=self._acceptor(f),
                what=f"{self.name} file {f.name}.gz",
                gunzip_md5=True,
                timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
                progress=progress,
            )
            raw = dest / f.name
            if raw.is_file():  # a stale uncompressed copy would shadow the fresh .gz
                raw.unlink()
        self._cache.clear()
        return dest


# --------------------------------------------------------------------------------------------
# zero-shot image trees


@dataclass
class SplitIndex:
    paths: list[Path]
    labels: list[int]


class ImageTreeSource(DatasetSource):
    """A dataset of image files with metadata files, split zero-shot by class (CUB, Cars, SOP).

    Looked for in ``<root>/<dirname>``, ``<root>`` itself, ``/dev/shm/<dirname>`` (the
    reference code's fast path, preferred when it exists) and ``~/.torch/<dirname>``.
    Subclasses only parse their metadata in :meth:`read_index`.
    """

    dirname: str = ""
    marker_files: tuple[str, ...] = ()
    system_dirs: tuple[str, ...] = ("/dev/shm",)
    image_size: int = 224
    channels: int = 3
    #: the published (train, test) image counts, reported by verify when they differ
    standard_counts: tuple[int, int] | None = None
    verify_is_slow = True

    def __init__(self, root: Path | None = None) -> None:
        super().__init__(Path(root).expanduser() if root is not None else None)
        self._index: dict[Path, dict[str, SplitIndex]] = {}

    def search_paths(self) -> list[Path]:
        paths: list[Path] = []
        if self.root is not None:
            paths += [self.root / self.dirname, self.root]
        paths += [Path(d) / self.dirname for d in self.system_dirs]
        paths.append(torch_home() / self.dirname)
        return _unique(paths)

    def install_dir(self, root: Path | None = None) -> Path:
        return (Path(root).expanduser() if root is not None else torch_home()) / self.dirname

    def is_present(self, path: Path) -> bool:
        return all((path / name).exists() for name in self.marker_files)

    @abstractmethod
    def read_index(self, path: Path) -> dict[str, SplitIndex]:
        """Parse the metadata under ``path`` into the zero-shot ``train`` and ``test`` splits."""

    def index(self, path: Path) -> dict[str, SplitIndex]:
        if path not in self._index:
            self._index[path] = self.read_index(path)
        return self._index[path]

    def load_split(self, split: str, augment: bool = False) -> ImageDataset:
        check_split(split)
        entry = self.index(self.locate())[split]
        transform = reference_transform(train=augment, size=self.image_size)
        return FileImageDataset(entry.paths, entry.labels, transform, image_size=self.image_size, channels=self.channels)

    def verify(self, path: Path) -> str:
        """Metadata parses, every listed image exists, is non-empty and has an image header."""
        from PIL import Image, UnidentifiedImageError  # lazy: only image-file datasets decode with Pillow

        index = self.index(path)
        for split, entry in index.items():
            if not entry.paths:
                raise DataError(f"dataset {self.name!r} in {path} has no {split} images; the metadata files are incomplete")
            for image in entry.paths:
                try:
                    if image.stat().st_size == 0:
                        raise DataError(f"image file {image} is empty; re-extract the dataset archive")
                    with Image.open(image) as handle:
                        handle.size  # noqa: B018 - reading the header is the check
                except FileNotFoundError:
                    raise DataError(f"image file {image} is missing; re-extract the dataset archive") from None
                except (UnidentifiedImageError, OSError) as exc:
                    raise DataError(f"image file {image} is not a readable image ({exc}); re-extract the dataset archive") from None
        counts = tuple(len(index[s].paths) for s in SPLITS)
        classes = tuple(len(set(index[s].labels)) for s in SPLITS)
        line = f"{counts[0]} train images / {classes[0]} classes, {counts[1]} test images / {classes[1]} classes, all readable"
        if self.standard_counts and counts != self.standard_counts:
            line += f" (the standard split has {self.standard_counts[0]} / {self.standard_counts[1]} images)"
        return line


def read_table(path: Path, columns: int, *, header: bool = False, hint: str = "") -> list[list[str]]:
    """Whitespace-separated metadata lines with at least ``columns`` fields, or a DataError naming the line."""
    fix = f"; {hint}" if hint else ""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"file {path} does not exist{fix}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} ({exc}){fix}") from None
    rows = []
    lines = text.splitlines()
    for number, line in enumerate(lines[1:] if header else lines, start=2 if header else 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) < columns:
            raise DataError(f"file {path} line {number} has {len(fields)} fields, expected {columns}{fix}")
        rows.append(fields)
    return rows


def parse_int(text: str, path: Path, what: str, hint: str = "") -> int:
    try:
        return int(text)
    except ValueError:
        fix = f"; {hint}" if hint else ""
        raise DataError(f"file {path} has {what} {text!r}, expected an integer{fix}") from None
