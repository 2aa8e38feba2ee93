"""The bundled loss families (the ``losses`` entry point); miners live in :mod:`.miners`.

Each family's record lists the reference names it answers to (``ptripletN``,
``pmtripletN``, ``pcontrastN``, ``pgliftE`` ...) as aliases; :func:`robrank.losses.resolve_loss`
parses them into family, miner and metric.
"""
from __future__ import annotations

from robrank.plugin_api import LossRecord, hookimpl, reference_aliases


def _family(name: str, implementation: str, summary: str, metrics: tuple[str, ...], *, miner: bool, raw: bool,
            names: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> LossRecord:
    """A loss family answering to the reference's names (``p<miner><name><metric>``) for each of its metrics.

    ``names`` are the reference's spellings of the family (default: its name); ``extra`` are
    further aliases, listed first.
    """
    return LossRecord(
        name=name,
        factory=f"{__name__}.{implementation}",
        summary=summary,
        aliases=(*extra, *reference_aliases(names or (name,), metrics, uses_miner=miner)),
        metrics=metrics,
        family=name,
        uses_miner=miner,
        has_raw=raw,
    )


#: the families, each class a lazy "module:Class" reference (imported when the loss is built)
RECORDS = (
    _family("triplet", "triplet:TripletLoss", "triplet margin loss (margin 0.2 for C/N, 1.0 for E); miner letters m s d D h",
            ("C", "E", "N"), miner=True, raw=True),
    _family("contrastive", "contrastive:ContrastiveLoss",
            "contrastive loss, margin 1.0 (C: cosine-embedding loss, whose negative term is 0 at that margin)",
            ("C", "E", "N"), miner=True, raw=True, names=("contrast",), extra=("contrast",)),
    _family("margin", "margin:MarginLoss", "margin loss, learnable β (init 0.6, own SGD lr 5e-4), margin 0.2",
            ("C", "E", "N"), miner=True, raw=True),
    _family("multisim", "multisim:MultiSimilarityLoss", "multi-similarity loss (weights 2/40, threshold 0.5), cosine similarities",
            ("C", "N"), miner=False, raw=False, names=("ms",), extra=("ms", "multi-similarity")),
    _family("glift", "lifted:GeneralizedLiftedLoss", "generalised lifted-structure loss (margin 1.0, + 5e-3 mean embedding norm)",
            ("E",), miner=False, raw=False, extra=("lifted",)),
    _family("npair", "npair:NPairLoss", "N-pair loss with normalised anchors (+ 5e-3 mean embedding norm)",
            ("E",), miner=False, raw=False),
    _family("quadruplet", "quadruplet:QuadrupletLoss",
            "quadruplet loss: triplet + relu(d(a,p) - d(n,n2) + m2), m2 0.1 (C/N) / 0.5 (E)",
            ("C", "E", "N"), miner=True, raw=True, names=("quad",), extra=("quad",)),
    _family("snr", "snr:SNRLoss", "signal-to-noise-ratio triplet loss (margin 0.2, reg 0.005)", ("C", "E", "N"), miner=True, raw=True),
    _family("infonce", "infonce:InfoNCELoss", "symmetric InfoNCE over anchor x partner cosine similarities (scale exp(0))",
            ("C",), miner=False, raw=False, names=("ice",), extra=("ice",)),
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
