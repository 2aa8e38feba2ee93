"""robrank-catride: CA-TRIDE (Tian et al., ICML 2024) as a third-party robrank defense.

It contributes, through the ``robrank`` entry point ``catride = "robrank_catride"``:

* the defense ``catride`` (``-C DATASET:<backbone>ct:ptripletN``), see :mod:`robrank_catride.defense`,
* the miner ``ghard`` (letter ``g``), the gradually-hard semihard miner it trains with.
"""
from __future__ import annotations

import importlib
from typing import Any

from robrank.plugin_api import DefenseRecord, MinerRecord, hookimpl

__version__ = "0.1.0"
__all__ = ["CATRIDE", "GraduallyHardMiner", "register_defenses", "register_miners"]

#: the implementations import torch: robrank loads them by these lazy references when the
#: defense or miner is first used, so registering them (``robrank --help``) imports none of it;
#: the defense's options are declared without torch in ``fields`` (what ``robrank list`` reads)
_LAZY = {"CATRIDE": f"{__name__}.defense", "GraduallyHardMiner": f"{__name__}.miner"}
_FIELDS = f"{__name__}.fields"


def __getattr__(name: str) -> Any:
    if name in _LAZY:  # the package's classes, loaded on first access
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def register_defenses(register):
    register(
        DefenseRecord.of(
            f"{_LAZY['CATRIDE']}:CATRIDE",
            name="catride",
            declared=f"{_FIELDS}:CATRIDEDeclaration",
            summary="CA-TRIDE (ICML'24): CAP/ANP inner attacks alternating per step, soft-max-weighted triplets",
            aliases=("CA-TRIDE", "CATRIDE"),
            suffixes={"ct": {}},
            loss_families=("triplet",),
            metrics=("N",),
            constraints="metric N; triplet losses; BatchNorm frozen; 28px: 77/255, 3/255, 16 steps; 224px: 8/255, 1/255, 16 steps",
        )
    )


@hookimpl
def register_miners(register):
    register(
        MinerRecord(
            name="ghard",
            factory=f"{_LAZY['GraduallyHardMiner']}:GraduallyHardMiner",
            summary="CA-TRIDE's gradually-hard semihard negative: margin 0.2 (1 - r/2)^2 over training progress r",
            aliases=("spc2-ghard",),
            letter="g",
        )
    )
