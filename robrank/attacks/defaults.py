"""The spec defaults and choices every attack shares, in a module without torch so the spec grammar loads light."""
from __future__ import annotations

from ..params import Param

#: PGD defaults of the reference ``AdvRank`` constructor
DEFAULT_EPS = 4.0 / 255.0
DEFAULT_ALPHA = 1.0 / 255.0
DEFAULT_PGDITER = 24

#: optimisers of a single search, and the worst case over several (``opt=``, :mod:`robrank.attacks.ensemble`)
OPTIMIZERS: tuple[str, ...] = ("pgd", "apgd", "worst")
#: the objectives: the attack's own (the reference's) and its smooth surrogate (``loss=``)
LOSSES: tuple[str, ...] = ("reference", "smooth")

#: the direction of a signed attack (CA+, QA-, ...): declare it in ``params`` to take ``pm=+|-``
PM = Param("pm", str, choices=("+", "-"), help="direction: + raises, - lowers the target's rank", example="pm=+")

__all__ = ["DEFAULT_ALPHA", "DEFAULT_EPS", "DEFAULT_PGDITER", "LOSSES", "OPTIMIZERS", "PM"]
