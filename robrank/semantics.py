"""The two attack semantics, named in one place.

``reference`` reproduces the reference code's quirks (what the published numbers measure);
``fixed`` corrects them (docs/attacks.md lists each one). Attacks, swipes, their results
files and every command that runs an attack take one of these names.
"""
from __future__ import annotations

from .errors import ConfigError

REFERENCE = "reference"
FIXED = "fixed"
SEMANTICS: tuple[str, ...] = (REFERENCE, FIXED)


def check_semantics(value: str) -> str:
    """``value`` if it names a semantics; a one-line :class:`ConfigError` otherwise."""
    if value not in SEMANTICS:
        raise ConfigError(f"unknown attack semantics {value!r}; use {' or '.join(SEMANTICS)}")
    return value


__all__ = ["REFERENCE", "FIXED", "SEMANTICS", "check_semantics"]
