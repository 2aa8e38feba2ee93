"""The bundled loss families (the ``losses`` entry point); miners live in :mod:`.miners`.

Each family's record lists the reference names it answers to (``ptripletN``,
``pmtripletN``, ``pcontrastN``, ``pgliftE`` ...) as aliases; :func:`robrank.losses.resolve_loss`
parses them into family, miner and metric.
"""
from __future__ import annotations

from robrank.plugin_api import LossRecord, hookimpl, reference_aliases

#: the families, each class a lazy "module:Class" reference (imported when the loss is built)
RECORDS = (
    LossRecord(
        name="triplet",
        factory=f"{__name__}.triplet:TripletLoss",
        summary="triplet margin loss (margin 0.2 for C/N, 1.0 for E); miner letters m s d D h",
        aliases=reference_aliases(("triplet",), ("C", "E", "N"), uses_miner=True),
        metrics=("C", "E", "N"),
        family="triplet",
        uses_miner=True,
        has_raw=True,
    ),
    LossRecord(
        name="contrastive",
        factory=f"{__name__}.contrastive:ContrastiveLoss",
        summary="contrastive loss, margin 1.0 (C: cosine-embedding loss, whose negative term is 0 at that margin)",
        aliases=("contrast", *reference_aliases(("contrast",), ("C", "E", "N"), uses_miner=True)),
        metrics=("C", "E", "N"),
        family="contrastive",
        uses_miner=True,
        has_raw=True,
    ),
    LossRecord(
        name="margin",
        factory=f"{__name__}.margin:MarginLoss",
        summary="margin loss, learnable β (init 0.6, own SGD lr 5e-4), margin 0.2",
        aliases=reference_aliases(("margin",), ("C", "E", "N"), uses_miner=True),
        metrics=("C", "E", "N"),
        family="margin",
        uses_miner=True,
        has_raw=True,
    ),
    LossRecord(
        name="multisim",
        factory=f"{__name__}.multisim:MultiSimilarityLoss",
        summary="multi-similarity loss (weights 2/40, threshold 0.5), cosine similarities",
        aliases=("ms", "multi-similarity", *reference_aliases(("ms",), ("C", "N"), uses_miner=False)),
        metrics=("C", "N"),
        family="multisim",
        uses_miner=False,
        has_raw=False,
    ),
    LossRecord(
        name="glift",
        factory=f"{__name__}.lifted:GeneralizedLiftedLoss",
        summary="generalised lifted-structure loss (margin 1.0, + 5e-3 mean embedding norm)",
        aliases=("lifted", *reference_aliases(("glift",), ("E",), uses_miner=False)),
        metrics=("E",),
        family="glift",
        uses_miner=False,
        has_raw=False,
    ),
    LossRecord(
        name="npair",
        factory=f"{__name__}.npair:NPairLoss",
        summary="N-pair loss with normalised anchors (+ 5e-3 mean embedding norm)",
        aliases=reference_aliases(("npair",), ("E",), uses_miner=False),
        metrics=("E",),
        family="npair",
        uses_miner=False,
        has_raw=False,
    ),
    LossRecord(
        name="quadruplet",
        factory=f"{__name__}.quadruplet:QuadrupletLoss",
        summary="quadruplet loss: triplet + relu(d(a,p) - d(n,n2) + m2), m2 0.1 (C/N) / 0.5 (E)",
        aliases=("quad", *reference_aliases(("quad",), ("C", "E", "N"), uses_miner=True)),
        metrics=("C", "E", "N"),
        family="quadruplet",
        uses_miner=True,
        has_raw=True,
    ),
    LossRecord(
        name="snr",
        factory=f"{__name__}.snr:SNRLoss",
        summary="signal-to-noise-ratio triplet loss (margin 0.2, reg 0.005)",
        aliases=reference_aliases(("snr",), ("C", "E", "N"), uses_miner=True),
        metrics=("C", "E", "N"),
        family="snr",
        uses_miner=True,
        has_raw=True,
    ),
    LossRecord(
        name="infonce",
        factory=f"{__name__}.infonce:InfoNCELoss",
        summary="symmetric InfoNCE over anchor x partner cosine similarities (scale exp(0))",
        aliases=("ice", *reference_aliases(("ice",), ("C",), uses_miner=False)),
        metrics=("C",),
        family="infonce",
        uses_miner=False,
        has_raw=False,
    ),
    LossRecord(
        name="ce",
        factory=f"{__name__}.ce:CrossEntropy",
        summary="softmax cross-entropy for classifier backbones (classification batches; accuracy validation)",
        aliases=("cross_entropy",),
        metrics=("E",),
        batch="classification",
        family="classification",
        uses_miner=False,
        has_raw=False,
    ),
)


@hookimpl
def register_losses(register):
    for record in RECORDS:
        register(record)
