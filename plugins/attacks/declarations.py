"""The bundled attacks' declarations: name, spec fields, reports, display and bounds, without torch.

Each attack class in this package inherits its declaration from here (``class
EmbeddingShift(ESDeclaration, Attack)``), so every fact is written once, and ``robrank list
attacks`` reads this module alone: it imports no torch. The records name both
(``AttackRecord.of("...es:EmbeddingShift", ..., declared="...declarations:ESDeclaration")``).
"""
from __future__ import annotations

from robrank.plugin_api import (
    EMBSHIFT,
    HIGHER,
    LOWER,
    PCTL,
    PERCENT,
    PM,
    TASK_CLASSIFICATION,
    AttackDeclaration,
    CandidateAttackDeclaration,
    MetricDisplay,
    Param,
)

#: the M field of the query attacks
CANDIDATES = Param("M", int, low=1, help="number of candidates moved in the perturbed query's ranking", example="M=1",
                   outside_class=True)
#: the spec field k of SPQA's xi = exp(k L_sp); None = the dataset's reference rate
RATE = Param(
    "rate",
    float,
    None,
    low=0.0,
    help="k of the semantics-preserving weight xi = min(exp(k L_sp), 1e9) [default: the dataset's reference rate, else 2e4]",
    example="rate=20000",
    implicit=True,
)
#: top-1 label match, in percent like every recall
R1_PERCENT = MetricDisplay("r@1", "R1", full=100.0, robust=HIGHER)
#: what the untargeted classifier PGD reports (the targeted one adds ``target``)
UNTARGETED_REPORTS = ("accuracy", "loss")


class CADeclaration(CandidateAttackDeclaration):
    name = "CA"


class QADeclaration(AttackDeclaration):
    name = "QA"
    params = (PM, CANDIDATES)
    reports = ("loss", "prank", EMBSHIFT)
    display = (PCTL,)
    bounds = {"prank": PERCENT}
    legacy_fractions = ("prank",)


class SPQADeclaration(AttackDeclaration):
    name = "SPQA"
    params = (PM, CANDIDATES, RATE)
    reports = ("loss", "prank", "GTprank", EMBSHIFT)
    display = (PCTL, MetricDisplay("GTprank", "GT PCTL", full=100.0))
    bounds = {"prank": PERCENT, "GTprank": PERCENT}
    legacy_fractions = ("prank", "GTprank")


class ESDeclaration(AttackDeclaration):
    name = "ES"
    reports = ("loss", "r@1", "r@10", "r@100", EMBSHIFT)
    #: the shift out of 2 (the unit sphere's diameter); R@1 is already in percent
    display = (MetricDisplay(EMBSHIFT, "ES", full=2.0, decimals=3, robust=LOWER), MetricDisplay("r@1", "R1", full=100.0, robust=HIGHER))
    bounds = {"r@1": (0.0, 100.0), "r@10": (0.0, 100.0), "r@100": (0.0, 100.0)}  # the reference's recalls are percentages


class TMADeclaration(AttackDeclaration):
    name = "TMA"
    reports = ("Cosine-SIM", EMBSHIFT)
    display = (MetricDisplay("Cosine-SIM", "COS", full=1.0, decimals=3, robust=LOWER),)
    bounds = {"Cosine-SIM": (-1.0, 1.0)}


class Top1RecallDeclaration(AttackDeclaration):
    """What LTM and GTM share: both are scored by the top-1 label recall."""

    reports = ("r@1", EMBSHIFT)
    display = (R1_PERCENT,)
    bounds = {"r@1": PERCENT}
    legacy_fractions = ("r@1",)


class LTMDeclaration(Top1RecallDeclaration):
    name = "LTM"


class GTMDeclaration(Top1RecallDeclaration):
    name = "GTM"


class GTTDeclaration(AttackDeclaration):
    name = "GTT"
    reports = ("ID-Retain@1", "retain@4", EMBSHIFT)
    bounds = {"ID-Retain@1": PERCENT, "retain@4": PERCENT}
    legacy_fractions = ("ID-Retain@1", "retain@4")
    display = (
        MetricDisplay("ID-Retain@1", "RETAIN1", full=100.0, robust=HIGHER),
        MetricDisplay("retain@4", "RETAIN4", full=100.0, robust=HIGHER),
    )


class PGDDeclaration(AttackDeclaration):
    name = "PGD"
    task = TASK_CLASSIFICATION
    params = (
        Param("targeted", bool, False, implicit=True, example="targeted=1",
              help="pull each image to a random other class instead of away from its own"),
    )
    reports = (*UNTARGETED_REPORTS, "target")
    display = (MetricDisplay("accuracy", "Acc", full=100.0, robust=HIGHER), MetricDisplay("target", "Hit", full=100.0, robust=LOWER))
    bounds = {"accuracy": PERCENT, "target": PERCENT}
    legacy_fractions = ("accuracy", "target")
