"""Files that survive a kill: atomic writes and checkpoints that never unpickle code.

Everything robrank writes (configs, metrics, checkpoints, swipe results) goes through a
temporary file in the same directory followed by ``os.replace``, so a reader sees either the
old complete file or the new complete file, never half of one.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import CheckpointError, PickledCodeError, StorageError, one_line


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; it replaces ``path`` on success only.

    A write the disk refuses (read-only, full, no permission) becomes one
    :class:`~robrank.errors.StorageError` line naming the file; the previous ``path`` is
    left as it was and the temporary file removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _storage_error(path, exc) from exc
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):  # whatever the OS says (ENOSPC, EROFS, ENAMETOOLONG, EIO, ...): one line
            raise _storage_error(path, exc) from exc
        raise


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) until the block ends, then raise it.

    A checkpoint or results file being written when the user presses Ctrl-C is the work
    that most needs saving; an interrupt inside ``torch.save`` also leaves its zip writer
    raising a ``RuntimeError`` that hides the ``KeyboardInterrupt``. Only for short writes:
    a download stays interruptible. Outside the main thread signals cannot be caught, so
    the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield  # a background job that ignores Ctrl-C keeps ignoring it
        return
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if pressed:
        raise KeyboardInterrupt


#: what a full, read-only or forbidden disk raises
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}


def _storage_error(path: Path, exc: OSError) -> StorageError:
    what = exc.strerror or type(exc).__name__
    kept = "; the previous file is unchanged" if path.exists() else ""
    return StorageError(f"cannot write {path}: {what}{kept}; free space or make the folder writable (or write elsewhere)")


def check_free_space(folder: str | os.PathLike[str], needed: int, what: str) -> None:
    """Refuse to start work whose output will not fit: ``needed`` bytes in ``folder``."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise StorageError(f"{folder} has {free / 2**20:.0f} MiB free but {what} needs about {needed / 2**20:.0f} MiB; "
                           "free space or choose another --run-dir")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with deferred_interrupt(), atomic_open(path, "w") as handle:
        handle.write(text)


def write_json(path: str | os.PathLike[str], payload: Any) -> None:
    write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=_jsonable) + "\n")


def append_jsonl(path: str | os.PathLike[str], record: Any) -> None:
    """Append one JSON line by rewriting the file atomically (files here are small)."""
    path = Path(path)
    previous = path.read_text() if path.exists() else ""
    write_text(path, previous + json.dumps(record, default=_jsonable) + "\n")


def read_jsonl(path: str | os.PathLike[str]) -> list[Any]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_json(
    path: str | os.PathLike[str],
    error: type[Exception],
    noun: str,
    missing_hint: str,
    invalid_hint: str = "",
    parse_constant: Any = None,
) -> Any:
    """A JSON file's content; a missing, unreadable or malformed file is one ``error`` line naming ``noun``."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise error(f"{noun} {path} does not exist; {missing_hint}") from None
    except OSError as exc:
        raise error(f"cannot read {noun} {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text, parse_constant=parse_constant)
    except json.JSONDecodeError as exc:
        hint = f"; {invalid_hint}" if invalid_hint else ""
        raise error(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}){hint}") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return one_line(lines[0] if lines else type(exc).__name__, 120)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write a checkpoint that ``torch.load(weights_only=True)`` can read.

    Only tensors, numbers, strings, lists and dicts may appear in ``payload``: that is what
    lets :func:`load_checkpoint` refuse to execute code from an untrusted file.
    """
    import torch  # lazy: keeps this module torch-free

    with deferred_interrupt(), atomic_open(path, "wb") as handle:
        torch.save(payload, handle)


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects."""
    import torch  # lazy: keeps this module torch-free

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass a run directory or a .pt file written by robrank train")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes, an interrupted copy?); copy it again or retrain")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" not in str(exc):  # not a refused object: the bytes themselves are bad
            raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file (the pickle stream does not parse)") from exc
        raise PickledCodeError(
            f"checkpoint {path} holds objects other than tensors and plain data, so it is not loaded "
            "(robrank never unpickles code); for a model trained elsewhere, save it with torch.jit.save or "
            "torch.export.save, or save its state_dict, and pass it with --model/--weights (docs/api.md)"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or not a torch file ({_first_line(exc)})") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {path} is not a robrank checkpoint (top level is {type(payload).__name__})")
    return payload


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file, read in chunks: results files name the exact weights they measured."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
