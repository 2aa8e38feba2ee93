"""CA-TRIDE's declaration: its name, options and per-family budgets, without torch.

:class:`robrank_catride.defense.CATRIDE` inherits it, and the record names it
(``declared=``), so ``robrank list defenses`` reads this module alone and imports no torch.
"""
from __future__ import annotations

from robrank.plugin_api import SIZE_28, SIZE_224, AdversarialDefenseDeclaration, Param

#: the released code's inner iterations (hard-coded there, whatever the config's pgditer)
RELEASED_ITERATIONS = 16
#: how training progress r is measured for the step decay and the miner margin
SCHEDULES: tuple[str, ...] = ("epoch", "step")
#: both inner attacks stop once their loss falls below this (checked before each step)
STOP_BELOW = 1e-5

PARAMS: tuple[Param, ...] = (
    Param("pgditer", int, RELEASED_ITERATIONS, low=1, help="inner iterations (16, hard-coded in the released code)"),
    Param("lam", float, 10.0, low=0.0, high=100.0,
          help="lambda of the soft-max-weighted means (released code: CUB 10, Cars 9.5, SOP 2; none for 28x28)"),
    Param("step_decay", bool, True, help="inner step alpha*r growing with training progress r (released code), else alpha"),
    Param("schedule", str, "epoch", choices=SCHEDULES,
          help="progress r of the step decay and the miner margin: epoch = e/E (released code), step = t/T"),
    Param("extra_term", bool, True,
          help="the released code's extra triplet term 0.5*ReLU(H_ap - H_an + 0.04) on the adversarial loss"),
    Param("stop_below", float, STOP_BELOW, low=0.0, help="inner attacks stop once their loss is below this"),
)


class CATRIDEDeclaration(AdversarialDefenseDeclaration):
    """CA-TRIDE's options (the PGD budget's plus its own) and the released configs' budgets."""

    name = "catride"
    params = PARAMS
    #: the released configs' budgets per image-size family, with its 16 iterations
    family_defaults = {
        SIZE_28: {"eps": 77.0 / 255.0, "alpha": 3.0 / 255.0, "pgditer": RELEASED_ITERATIONS},
        SIZE_224: {"eps": 8.0 / 255.0, "alpha": 1.0 / 255.0, "pgditer": RELEASED_ITERATIONS},
    }
