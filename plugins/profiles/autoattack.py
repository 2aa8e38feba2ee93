"""Stronger variants of the ERS profiles: the worst case over several searches, and the L2 threat.

``rob28-aa``/``rob224-aa`` are rob28/rob224 attack for attack (same ten ERS columns, same
ε, α and 32 steps) with ``opt=worst``: per query or candidate, the strongest of the
reference PGD run, APGD on the reference objective and APGD on a smooth surrogate split
into two restarts (robrank.attacks.ensemble), so each column is at most the rob28/rob224
value and costs three times its gradient evaluations. The results file records every
member's result and which member won each column.

``rob28-l2``/``rob224-l2`` are the same ten attacks under an L2 budget (``norm=2``). The
radii are the standard ones of the classification literature for the same image sizes
(docs/autoattack.md says why): ε = 2.0 for 28x28 (MNIST, as in Tramèr & Boneh 2019 and
Croce & Hein 2020) and ε = 3.0 for 224x224 (ImageNet, as in Engstrom et al.'s
robustness library and Salman et al. 2020). The step is α = 2.5·ε/32, the rule of Madry
et al. that lets 32 steps cross the ball 2.5 times, as rob28's 3/255 x 32 crosses its
77/255 ball 1.25 times.
"""
from __future__ import annotations

from collections.abc import Callable

from robrank.plugin_api import SIZE_224, SIZE_28, Score

from .ers import ERS
from .reference import ROB224_PGD, ROB28_PGD, _ers_profile

#: the worst-case search added to every attack of the ERS profiles
WORST = "opt=worst"
#: L2 budgets: (ε, α = 2.5·ε/32, 32 steps) at 28 px and 224 px
ROB28_L2 = "eps=2.0:alpha=0.15625:pgditer=32:norm=2"
ROB224_L2 = "eps=3.0:alpha=0.234375:pgditer=32:norm=2"


def rob28_aa() -> list[str]:
    return [f"{spec}:{WORST}" for spec in _ers_profile(ROB28_PGD)]


def rob224_aa() -> list[str]:
    return [f"{spec}:{WORST}" for spec in _ers_profile(ROB224_PGD)]


def rob28_l2() -> list[str]:
    return _ers_profile(ROB28_L2)


def rob224_l2() -> list[str]:
    return _ers_profile(ROB224_L2)


#: name -> (factory, image size, score, one-line summary, aliases, the profile it is a variant of)
PROFILES: dict[str, tuple[Callable[[], list[str]], int, Score | None, str, tuple[str, ...], str]] = {
    "rob28-aa": (rob28_aa, SIZE_28, ERS, "rob28, each attack the per-sample worst case of PGD, APGD and smooth-objective APGD (3x the gradients)", (), "rob28"),
    "rob224-aa": (rob224_aa, SIZE_224, ERS, "rob224, each attack the per-sample worst case of PGD, APGD and smooth-objective APGD (3x the gradients)", (), "rob224"),
    "rob28-l2": (rob28_l2, SIZE_28, ERS, "ERS profile for 28x28 data under an L2 budget: the rob28 attacks at L2 eps 2.0", (), "rob28"),
    "rob224-l2": (rob224_l2, SIZE_224, ERS, "ERS profile for 224x224 data under an L2 budget: the rob224 attacks at L2 eps 3.0", (), "rob224"),
}
#: the variants that are their base profile's worst-case evaluation (robrank bench ranks by them)
WORST_CASE: tuple[str, ...] = ("rob28-aa", "rob224-aa")
