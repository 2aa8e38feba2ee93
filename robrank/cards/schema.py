"""The model card: one JSON file that says what was evaluated, how, and what came out.

A card is built from the swipe files of a bench (never typed by hand), so every number in it
can be traced to a results file and checked again (:mod:`robrank.bench.verify`). The reader
here needs only the standard library: a leaderboard can be built where torch is absent.
docs/bench.md documents every field.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import RobrankError
from ..io import read_json

SCHEMA = "robrank-card"
SCHEMA_VERSION = 1
#: the two evaluations of a card, in the order they are shown
ROLES: tuple[str, ...] = ("reference", "worst_case")
ROLE_TITLES: dict[str, str] = {"reference": "reference attacks", "worst_case": "worst case"}


class CardError(RobrankError):
    """A card file that is missing, not JSON, or not a valid robrank model card."""


#: top-level field -> accepted JSON types
TOP_LEVEL: dict[str, tuple[type, ...]] = {
    "schema": (str,),
    "schema_version": (int,),
    "draft": (bool,),
    "draft_reason": (str, type(None)),
    "created": (str,),
    "model": (dict,),
    "data": (dict,),
    "evaluation": (dict,),
    "threat_model": (dict,),
    "clean": (dict,),
    "scores": (dict,),
    "cost": (dict,),
    "software": (dict,),
}
SCORE: dict[str, tuple[type, ...]] = {"profile": (str,), "name": (str,), "value": (int, float), "columns": (list,)}
COLUMN: dict[str, tuple[type, ...]] = {"key": (str,), "label": (str,), "raw": (int, float), "rescaled": (int, float)}


def _check(obj: Mapping[str, Any], fields: Mapping[str, tuple[type, ...]], where: str) -> None:
    for name, types in fields.items():
        if name not in obj:
            raise CardError(f"{where}: missing field {name!r}; the file is not a complete robrank model card")
        value = obj[name]
        if isinstance(value, bool) and bool not in types:
            raise CardError(f"{where}.{name} must be {'/'.join(t.__name__ for t in types)}, got bool")
        if not isinstance(value, types):
            raise CardError(f"{where}.{name} must be {'/'.join(t.__name__ for t in types)}, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise CardError(f"{where}.{name} is {value}; a card holds finite numbers only")


def validate(card: Any, where: str = "card") -> None:
    """Refuse anything that is not a valid version-1 card: one :class:`CardError` line naming the field."""
    if not isinstance(card, Mapping):
        raise CardError(f"{where}: a model card is a JSON object, got {type(card).__name__}")
    if card.get("schema") != SCHEMA:
        raise CardError(f"{where}: not a robrank model card (schema {card.get('schema')!r}, expected {SCHEMA!r}); write one with robrank bench")
    if card.get("schema_version") != SCHEMA_VERSION:
        raise CardError(f"{where}: card schema version {card.get('schema_version')!r} is not supported (this robrank reads {SCHEMA_VERSION})")
    _check(card, TOP_LEVEL, where)
    for key, value in card["clean"].items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 100.0:
            raise CardError(f"{where}.clean.{key} is {value!r}; clean metrics are percentages in [0, 100]")
    if not card["scores"]:
        raise CardError(f"{where}.scores is empty; a card holds at least the reference evaluation")
    for role, score in card["scores"].items():
        if role not in ROLES:
            raise CardError(f"{where}.scores.{role}: unknown evaluation; a card holds {' and '.join(ROLES)}")
        _check(score, SCORE, f"{where}.scores.{role}")
        for i, column in enumerate(score["columns"]):
            _check(column, COLUMN, f"{where}.scores.{role}.columns[{i}]")
    if not card["draft"] and card["evaluation"].get("partial"):
        raise CardError(f"{where}: a card from a partial evaluation ({card['evaluation']['partial']}) must be marked draft")


def load_card(path: str | Path) -> dict[str, Any]:
    """Read and validate a card file; every failure is one :class:`CardError` line."""
    card = read_json(path, CardError, "card", "pass a card.json written by robrank bench")
    validate(card, where=str(path))
    return card


def score_value(card: Mapping[str, Any], role: str) -> float | None:
    """The card's ERS (or other profile score) of one evaluation, None when it holds none."""
    score = card["scores"].get(role)
    return None if score is None else float(score["value"])


def label(card: Mapping[str, Any]) -> str:
    """A short name for tables: the card's own name, else its run or spec."""
    model = card["model"]
    return str(card.get("name") or model.get("name") or model.get("spec") or model.get("run") or "model")


def status(card: Mapping[str, Any]) -> str:
    """``draft``, ``verified`` (a --verify that passed is recorded) or ``reported``."""
    if card["draft"]:
        return "draft"
    verification = card.get("verification") or {}
    return "verified" if verification.get("passed") else "reported"


__all__ = ["SCHEMA", "SCHEMA_VERSION", "ROLES", "ROLE_TITLES", "CardError", "validate", "load_card", "score_value", "label", "status"]
