"""Losses: base classes for loss and miner plugins, and loss-name resolution.

The loss families and miners themselves are plugins (``robrank_plugins.losses``); this
package holds only the contracts they implement (:mod:`.base`) and the reference-name
grammar (:mod:`.names`)::

    choice = resolve_loss("pmtripletN")          # or resolve_loss("triplet", metric="N", miner="semihard")
    criterion = build_criterion(choice)
    loss = criterion(model(images), labels)      # raw embeddings of an SPC-2 batch
"""
from .base import Criterion, Miner, TripletCriterion, check_spc2, spc2_anchors_positives
from .names import (
    REFERENCE_MINER_LETTERS,
    LossChoice,
    build_criterion,
    parse_reference_name,
    reference_aliases,
    resolve_loss,
)

__all__ = [
    "Criterion",
    "LossChoice",
    "Miner",
    "REFERENCE_MINER_LETTERS",
    "TripletCriterion",
    "build_criterion",
    "check_spc2",
    "parse_reference_name",
    "reference_aliases",
    "resolve_loss",
    "spc2_anchors_positives",
]
