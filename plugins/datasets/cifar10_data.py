"""CIFAR-10 (classification only, the reference): 50,000 train / 10,000 test 32x32 RGB images.

Files: the "python version" batches ``data_batch_1..5``, ``test_batch`` and ``batches.meta``
in ``<root>/cifar-10-batches-py`` or ``~/.torch/cifar-10-batches-py``. They are pickles; a
pickle can run arbitrary code, so they are read with an unpickler that only rebuilds numpy
arrays and plain containers and refuses everything else. Train transform
RandomCrop(32, padding=4) + RandomHorizontalFlip (vectorised, in memory), test none.
"""
from __future__ import annotations

import io
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robrank.plugin_api import (
    DEFAULT_TIMEOUT,
    CropFlipTensorDataset,
    DataError,
    DatasetSource,
    Digests,
    ImageDataset,
    TensorImageDataset,
    check_split,
    download_file,
    ensure_writable,
    extract_tar,
    md5_file,
    torch_home,
)

from .cifar10 import SIZE

DIRNAME = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
META = "batches.meta"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
#: md5 of each extracted file (the official archive's content), checked by verify
FILE_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
PER_BATCH = 10000

#: the only globals a CIFAR pickle may name: numpy's array and dtype reconstruction
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
}


class _Refused(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list."""


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise _Refused(f"refusing to load {module}.{name}")


def load_batch(path: Path) -> dict[str, Any]:
    """One CIFAR batch file as a dict with str keys, without executing anything from it."""
    hint = "re-download it with `robrank data download cifar10`"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"file {path} does not exist; {hint}") from None
    try:
        payload = _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except _Refused as exc:
        raise DataError(f"file {path} is not a plain CIFAR batch ({exc}); it is not loaded; {hint}") from None
    except Exception as exc:  # EOFError, ValueError, ... from a truncated or garbled pickle
        raise DataError(f"file {path} is truncated or corrupt ({type(exc).__name__}: {exc}); {hint}") from None
    if not isinstance(payload, dict):
        raise DataError(f"file {path} is not a CIFAR batch (top level is {type(payload).__name__}); {hint}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in payload.items()}


def _batch_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = load_batch(path)
    hint = "re-download it with `robrank data download cifar10`"
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIZE * SIZE:
        raise DataError(f"file {path} has no uint8 'data' array of N x 3072; {hint}")
    labels = np.asarray(labels, dtype=np.int64) if labels is not None else None
    if labels is None or labels.shape != (data.shape[0],) or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"file {path} has no 'labels' list of {data.shape[0]} classes in 0..9; {hint}")
    return data, labels


class Cifar10Source(DatasetSource):
    name = "cifar10"

    def __init__(self, root: Path | None = None) -> None:
        super().__init__(Path(root).expanduser() if root is not None else None)
        self._cache: dict[tuple[Path, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def search_paths(self) -> list[Path]:
        paths = [self.root / DIRNAME, self.root] if self.root is not None else []
        return [*paths, torch_home() / DIRNAME]

    def install_dir(self, root: Path | None = None) -> Path:
        return (Path(root).expanduser() if root is not None else torch_home()) / DIRNAME

    def is_present(self, path: Path) -> bool:
        return all((path / name).is_file() for name in (*TRAIN_BATCHES, *TEST_BATCHES))

    def how_to_get(self) -> str:
        return f"Run `robrank data download cifar10` or fetch {URL} and extract it (tar xzf)."

    def _read(self, path: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if (path, split) not in self._cache:
            parts = [_batch_arrays(path / name) for name in (TRAIN_BATCHES if split == "train" else TEST_BATCHES)]
            data = np.concatenate([p[0] for p in parts]).reshape(-1, 3, SIZE, SIZE)
            labels = np.concatenate([p[1] for p in parts])
            self._cache[(path, split)] = (torch.from_numpy(data), torch.from_numpy(labels))
        return self._cache[(path, split)]

    def load_split(self, split: str, augment: bool = False) -> ImageDataset:
        check_split(split)
        images, labels = self._read(self.locate(), split)
        return CropFlipTensorDataset(images, labels, padding=4) if augment else TensorImageDataset(images, labels)

    def verify(self, path: Path) -> str:
        for split in ("train", "test"):
            images, _ = self._read(path, split)
            expected = PER_BATCH * (len(TRAIN_BATCHES) if split == "train" else len(TEST_BATCHES))
            if images.shape[0] != expected:
                raise DataError(f"{split} split in {path} has {images.shape[0]} images, expected {expected}")
        for name, digest in FILE_MD5.items():
            file = path / name
            if not file.is_file():
                raise DataError(f"file {file} does not exist; re-download it with `robrank data download cifar10`")
            if md5_file(file) != digest:
                raise DataError(f"file {file} has the wrong content (md5 mismatch); re-download it with `robrank data download cifar10`")
        return "50000 train / 10000 test images, md5 of all 7 files verified"

    def download(self, dest: Path, *, progress: bool = False, timeout: float | None = None) -> Path:
        """Fetch the official tarball (md5-checked) and extract it as ``dest``."""
        dest = Path(dest)
        ensure_writable(dest.parent)
        with tempfile.TemporaryDirectory(prefix=".cifar10-download.", dir=dest.parent) as tmp:
            archive = Path(tmp) / "cifar-10-python.tar.gz"

            def accept(d: Digests) -> str | None:
                return None if d.md5 == ARCHIVE_MD5 else f"checksum mismatch (md5 {d.md5}, expected {ARCHIVE_MD5})"

            download_file(
                [URL], archive, accept=accept, what="cifar10 archive", timeout=timeout or DEFAULT_TIMEOUT, progress=progress
            )
            extracted = extract_tar(archive, Path(tmp), DIRNAME)
            if dest.exists():
                shutil.rmtree(dest)
            extracted.rename(dest)
        self._cache.clear()
        return dest
