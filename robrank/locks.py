"""The one file lock: an exclusive ``flock`` whose file names its holder.

A run directory (``robrank train``/``run``/``swipe``) and a sweep cell are each worked on by
one process at a time. The kernel releases an ``flock`` when its holder dies, so the lock
of a killed process is stale by construction and the next process takes it over,
rewriting the holder record (PID, host, command) in the file. A process that finds the
lock taken gets the holder's record, to name it in its message.
"""
from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import StorageError

#: how often a waiting process tries the lock again
POLL_SECONDS = 0.05


@contextmanager
def exclusive(path: str | os.PathLike[str], *, command: str = "robrank", wait: float = 0.0, what: str = "the lock file") -> Iterator[dict[str, Any] | None]:
    """Hold an exclusive lock on ``path`` for the block.

    Yields None while this process holds it, or the holder's record (``pid``, ``host``,
    ``command``; ``{}`` if unreadable) when another live process kept it for ``wait``
    seconds. On a platform without ``flock`` the block runs unlocked (yields None). A file
    that cannot be opened is a one-line StorageError naming ``what``.
    """
    try:
        import fcntl  # optional: fcntl exists on POSIX only
    except ImportError:
        yield None
        return
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}; choose a writable {what}") from None
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    yield holder(fd)
                    return
                time.sleep(POLL_SECONDS)
        # the lock is ours: any record left in the file is a killed process's (stale); take it over
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command}) + "\n"
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, record.encode(), 0)
        except OSError as exc:  # a full disk while taking the lock: refused before any work starts
            fcntl.flock(fd, fcntl.LOCK_UN)
            raise StorageError(f"cannot write {path}: {exc.strerror or exc}; free space or choose a writable {what}") from None
        try:
            yield None
        finally:
            try:
                os.ftruncate(fd, 0)  # the file stays (unlinking it would race a waiting opener)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def held(path: str | os.PathLike[str]) -> bool:
    """Whether a live process holds the lock on ``path`` (a shared, instant probe that takes nothing over)."""
    import fcntl  # optional: fcntl exists on POSIX only

    path = Path(path)
    if not path.exists():
        return False
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def holder(fd: int) -> dict[str, Any]:
    """The holder record in a lock file (``{}`` when empty or unreadable)."""
    try:
        found = json.loads(os.pread(fd, 4096, 0).decode(errors="replace"))
        return found if isinstance(found, dict) else {}
    except (OSError, ValueError):
        return {}


__all__ = ["exclusive", "held", "holder", "POLL_SECONDS"]
