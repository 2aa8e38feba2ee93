"""The bundled loss families (the ``losses`` entry point); miners live in :mod:`.miners`.

Each family's record lists the reference names it answers to (``ptripletN``,
``pmtripletN``, ``pcontrastN``, ``pgliftE`` ...) as aliases; :func:`robrank.losses.resolve_loss`
parses them into family, miner and metric.
"""
from __future__ import annotations

from robrank.plugin_api import hookimpl

from . import ce, contrastive, infonce, lifted, margin, multisim, npair, quadruplet, snr, triplet

RECORDS = (
    triplet.RECORD,
    contrastive.RECORD,
    margin.RECORD,
    multisim.RECORD,
    lifted.RECORD,
    npair.RECORD,
    quadruplet.RECORD,
    snr.RECORD,
    infonce.RECORD,
    ce.RECORD,
)


@hookimpl
def register_losses(register):
    for record in RECORDS:
        register(record)
