"""robrank-catride: CA-TRIDE (Tian et al., ICML 2024) as a third-party robrank defense.

It contributes, through the ``robrank`` entry point ``catride = "robrank_catride"``:

* the defense ``catride`` (``-C DATASET:<backbone>ct:ptripletN``), see :mod:`robrank_catride.defense`,
* the miner ``ghard`` (letter ``g``), the gradually-hard semihard miner it trains with.
"""
from __future__ import annotations

import robrank
from robrank.records import DefenseRecord, MinerRecord

from .defense import CATRIDE, PARAMS
from .miner import GraduallyHardMiner

__version__ = "0.1.0"
__all__ = ["CATRIDE", "GraduallyHardMiner", "register_defenses", "register_miners"]

_OPTIONS = ", ".join(f"{p.name} ({p.type.__name__}, default {p.default})" for p in PARAMS)


@robrank.hookimpl
def register_defenses(register):
    register(
        DefenseRecord(
            name="catride",
            factory=CATRIDE,
            summary="CA-TRIDE (ICML'24): CAP/ANP inner attacks alternating per step, soft-max-weighted triplets",
            aliases=("CA-TRIDE", "CATRIDE"),
            suffixes={"ct": {}},
            loss_families=("triplet",),
            metrics=("N",),
            constraints=f"metric N; triplet losses; BatchNorm frozen; pgditer (default 16), eps, alpha; {_OPTIONS}",
        )
    )


@robrank.hookimpl
def register_miners(register):
    register(
        MinerRecord(
            name="ghard",
            factory=GraduallyHardMiner,
            summary="CA-TRIDE's gradually-hard semihard negative: margin 0.2 (1 - r/2)^2 over training progress r",
            aliases=("spc2-ghard",),
            letter="g",
        )
    )
