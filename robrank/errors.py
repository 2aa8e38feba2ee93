"""User-facing errors.

Every mistake a user can make (an unknown name, a malformed spec, missing data, an
incompatible checkpoint, a crashing plugin) is raised as a :class:`RobrankError`. The CLI
turns it into a one-line message and exit code 2, never a traceback, so the message itself
must say what is wrong *and* how to fix it.
"""
from __future__ import annotations

from collections.abc import Iterable

#: A one-line message longer than this is cut (the fix must come early in the message).
MAX_MESSAGE = 200


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line and at most ``limit`` characters (an ellipsis marks a cut)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


class RobrankError(Exception):
    """A problem the user can fix; its message is shown verbatim on one line."""


class UnknownNameError(RobrankError):
    """A component name that no plugin registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        shown = ", ".join(known) if known else "(none registered)"
        super().__init__(f"unknown {kind[:-1] if kind.endswith('s') else kind} {name!r}; registered: {shown}")
        self.kind, self.name, self.known = kind, name, known


class PluginError(RobrankError):
    """A plugin failed to load or register, or two plugins claim the same name."""


class DataError(RobrankError):
    """Dataset files are missing, truncated or corrupt."""


class SpecError(RobrankError):
    """A malformed attack specification (names the offending field)."""


class CheckpointError(RobrankError):
    """A checkpoint that cannot be loaded, or does not fit the requested configuration."""


class PickledCodeError(CheckpointError):
    """A torch file that holds pickled objects (code), which robrank refuses to load."""


class ConfigError(RobrankError):
    """An incompatible combination of options (e.g. a defense with a loss it cannot use)."""
