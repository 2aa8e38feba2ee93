"""The bundled SPC-2 triplet miners (the ``miners`` entry point); their classes are in :mod:`.mining`.

Letters of the reference names: '' random, m semihard, s softhard, d distance-weighted,
D distance-weighted with p_switch 0.15, h hardest. Each class is a lazy ``"module:Class"``
reference, imported when a miner is built, so registering them imports no torch.
"""
from __future__ import annotations

from robrank.plugin_api import MinerRecord, hookimpl

#: name, letter, class in .mining, summary, aliases
MINERS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("random", "", "RandomMiner", "partner positive, uniformly random different-label negative (spc2-random)", ("spc2-random",)),
    ("semihard", "m", "SemihardMiner", "random semihard negative: d(a,p) < d(a,n) < d(a,p) + margin (spc2-semihard)",
     ("spc2-semihard",)),
    ("softhard", "s", "SofthardMiner", "soft-hard negative and positive, Roth et al. (spc2-softhard)", ("spc2-softhard",)),
    ("distance", "d", "DistanceWeightedMiner", "distance-weighted negative sampling, Wu et al. 2017 (spc2-distance)",
     ("distance-weighted", "spc2-distance")),
    ("distance-switch", "D", "DistanceSwitchMiner", "distance-weighted; with p=0.15 the triplets become (a, a, p)", ()),
    ("hardest", "h", "HardestMiner", "hardest different-label negative in the batch (spc2-hard)", ("hard", "spc2-hard")),
)
_PACKAGE = __name__.rpartition(".")[0]


@hookimpl
def register_miners(register):
    for name, letter, cls, summary, aliases in MINERS:
        register(MinerRecord(name=name, factory=f"{_PACKAGE}.mining:{cls}", summary=summary, aliases=aliases, letter=letter))
