"""User-facing errors.

Every mistake a user can make (an unknown name, a malformed spec, missing data, an
incompatible checkpoint, a crashing plugin) is raised as a :class:`RobrankError`. The CLI
turns it into a one-line message and exit code 2, never a traceback, so the message itself
must say what is wrong *and* how to fix it.
"""
from __future__ import annotations

from collections.abc import Iterable
import difflib
import errno
import os

#: A one-line message longer than this is cut (the fix must come early in the message).
MAX_MESSAGE = 200


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line and at most ``limit`` characters (an ellipsis marks a cut)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


class RobrankError(Exception):
    """A problem the user can fix; its message is shown verbatim on one line."""


def user_message(exc: BaseException) -> str:
    """The one line to show for ``exc``.

    A DataLoader worker re-raises an error in the main process with the worker's whole
    traceback as its message ("Caught DataError in DataLoader worker process 0. Original
    Traceback ..."); the user needs only the original error's own line, its last one.
    """
    text = str(exc)
    if "Original Traceback" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1].strip()
        name, sep, message = last.partition(": ")
        text = message if sep and name.replace(".", "").replace("_", "").isalnum() else last
    return " ".join(text.split())


class UnknownNameError(RobrankError):
    """A component name that no plugin registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str], aliases: Iterable[str] = ()):
        known = sorted(known)
        shown = ", ".join(known) if known else "(none registered)"
        hint = did_you_mean(str(name), [*known, *aliases])
        super().__init__(f"unknown {singular(kind)} {name!r}{hint}; registered: {shown}")
        self.kind, self.name, self.known = kind, name, known


def singular(kind: str) -> str:
    """A registry kind in the singular: losses -> loss, backbones -> backbone."""
    if kind.endswith("sses"):
        return kind[:-2]
    return kind[:-1] if kind.endswith("s") else kind


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest known names (compared without case), or ``""``."""
    by_fold = {}
    for k in known:
        by_fold.setdefault(str(k).lower(), str(k))
    close = difflib.get_close_matches(name.lower(), list(by_fold), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(by_fold[c]) for c in close)}?" if close else ""


class PluginError(RobrankError):
    """A plugin failed to load or register, or two plugins claim the same name."""


class DataError(RobrankError):
    """Dataset files are missing, truncated or corrupt."""


class SpecError(RobrankError):
    """A malformed attack specification (names the offending field)."""


class StorageError(RobrankError):
    """A file that cannot be written (read-only folder, full disk); what was there is kept."""


class CheckpointError(RobrankError):
    """A checkpoint that cannot be loaded, or does not fit the requested configuration."""


class PickledCodeError(CheckpointError):
    """A torch file that holds pickled objects (code), which robrank refuses to load."""


class ConfigError(RobrankError):
    """An incompatible combination of options (e.g. a defense with a loss it cannot use)."""


class NonFiniteError(RobrankError):
    """A number that must be finite is not: a diverged training loss, NaN embeddings, a NaN metric."""


def os_error_message(exc: OSError, action: str = "use") -> str:
    """One line for an error the OS raised on a path: the path, the OS's reason and its errno name.

    Every write robrank makes on purpose turns such errors into a :class:`StorageError`; this is
    the CLI's last net, so that no file operation ends in a traceback whatever the OS says.
    """
    where = " -> ".join(_short_path(str(f)) for f in (exc.filename, exc.filename2) if f is not None) or "a file"
    reason = exc.strerror or type(exc).__name__
    code = errno.errorcode.get(exc.errno, "") if exc.errno is not None else ""
    return f"cannot {action} {where}: {reason}{f' ({code})' if code else ''}; choose another path, free space or make it writable"


def _short_path(path: str, part_limit: int = 48) -> str:
    """``path`` with each over-long component cut to its ends and its length (a 300-character name stays one line)."""
    parts = path.split(os.sep)
    return os.sep.join(p if len(p) <= part_limit else f"{p[:20]}...{p[-8:]}[{len(p)} chars]" for p in parts)
