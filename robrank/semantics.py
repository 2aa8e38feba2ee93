"""The two attack semantics, named in one place.

``reference`` reproduces the reference code's quirks (what the published numbers measure);
``fixed`` corrects them (docs/attacks.md lists each one). Attacks, swipes, their results
files and every command that runs an attack take one of these names. The one numeric quirk
that declarations need too (a defense option's default) is named here, away from torch.
"""
from __future__ import annotations

from .errors import ConfigError

REFERENCE = "reference"
FIXED = "fixed"
SEMANTICS: tuple[str, ...] = (REFERENCE, FIXED)

#: ``torch.nn.functional.pairwise_distance``'s default eps, which the reference's ES objective
#: (``AdvRankLoss('ES')``: the ES attack, and ``embShift`` for EST and SES) inherited for E and N
REFERENCE_PAIRWISE_EPS = 1e-6


def check_semantics(value: str) -> str:
    """``value`` if it names a semantics; a one-line :class:`ConfigError` otherwise."""
    if value not in SEMANTICS:
        raise ConfigError(f"unknown attack semantics {value!r}; use {' or '.join(SEMANTICS)}")
    return value


__all__ = ["REFERENCE", "FIXED", "REFERENCE_PAIRWISE_EPS", "SEMANTICS", "check_semantics"]
