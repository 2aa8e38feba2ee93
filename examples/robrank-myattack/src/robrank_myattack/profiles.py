"""Swipe profiles that put MICA next to the candidate attack it extends.

``mi28`` / ``mi224`` run MICA± and CA± with W = 1 at exactly the budget of the ERS profiles
(rob28: ε = 77/255, α = 3/255, 32 steps; rob224: ε = 8/255), so the CA± rows are directly
comparable with a rob28/rob224 swipe of the same model and the MICA± rows show what momentum
adds at the same budget. The budgets are imported from robrank's bundled profiles so the two
can never drift apart.
"""
from __future__ import annotations

from robrank_plugins.profiles.reference import ROB28_PGD, ROB224_PGD

SIGNS = ("+", "-")


def _compare(pgd: str) -> list[str]:
    return [f"{attack}:pm={sign}:W=1:{pgd}" for attack in ("MICA", "CA") for sign in SIGNS]


def mi28() -> list[str]:
    return _compare(ROB28_PGD)


def mi224() -> list[str]:
    return _compare(ROB224_PGD)
