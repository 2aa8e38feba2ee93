"""The attack-spec grammar ``TYPE:key=val:key=val...``.

The reference parsed specs with two loose regular expressions, so a typo such as ``W=x``
or ``pm=*`` surfaced much later as an assertion deep inside an attack (or silently
became a default). Here a spec is validated up front against the attack's registered
:class:`~robrank.records.AttackRecord`: every problem becomes a one-line
:class:`~robrank.errors.SpecError` that names the offending field, and every valid spec has
one canonical text (keys in a fixed order, defaults filled in), so two spellings of the same
attack compare and store equal.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError, UnknownNameError

#: PGD defaults of the reference ``AdvRank`` constructor
DEFAULT_EPS = 4.0 / 255.0
DEFAULT_ALPHA = 1.0 / 255.0
DEFAULT_PGDITER = 24

#: canonical key order; pm/W/M only where the attack takes them, nes only when on
KEY_ORDER: tuple[str, ...] = ("pm", "W", "M", "eps", "alpha", "pgditer", "nes")
PGD_KEYS: tuple[str, ...] = ("eps", "alpha", "pgditer", "nes")
#: 0/1 switches; a switch that is off is left out of the canonical text
FLAG_KEYS: frozenset[str] = frozenset({"nes"})
INT_KEYS: frozenset[str] = frozenset({"W", "M", "pgditer"})
FLOAT_KEYS: frozenset[str] = frozenset({"eps", "alpha"})


@dataclass(frozen=True)
class AttackSpec:
    """A validated attack: registered ``type``, typed ``params`` (defaults filled), canonical ``text``."""

    type: str
    params: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    def __str__(self) -> str:
        return self.text

    @property
    def label(self) -> str:
        """Short display name, e.g. ``CA+`` or ``ES``."""
        return f"{self.type}{self.params.get('pm', '')}"


def _format(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def canonical_text(type_: str, params: dict[str, Any]) -> str:
    parts = [type_] + [f"{k}={_format(params[k])}" for k in KEY_ORDER if k in params]
    return ":".join(parts)


def _parse_value(text: str, key: str, value: str) -> Any:
    if key == "pm":
        if value not in ("+", "-"):
            raise SpecError(f"attack spec {text!r}: field pm must be + or - (got {value!r})")
        return value
    if key in FLAG_KEYS:
        if value not in ("0", "1"):
            raise SpecError(f"attack spec {text!r}: field {key} must be 0 or 1 (got {value!r})")
        return int(value)
    if key in INT_KEYS:
        try:
            number = int(value)
        except ValueError:
            raise SpecError(f"attack spec {text!r}: field {key} must be a whole number (got {value!r})") from None
        if number < 1:
            raise SpecError(f"attack spec {text!r}: field {key} must be at least 1 (got {number})")
        return number
    try:
        number = float(value)
    except ValueError:
        raise SpecError(f"attack spec {text!r}: field {key} must be a number (got {value!r})") from None
    if not math.isfinite(number) or number < 0:
        raise SpecError(f"attack spec {text!r}: field {key} must be a finite number >= 0 (got {value!r})")
    return number


def accepted_keys(record: Any) -> tuple[str, ...]:
    """Keys an attack takes: its required ones, pm when signed, and the PGD settings."""
    keys = set(record.required) | set(PGD_KEYS)
    if record.signed:
        keys.add("pm")
    return tuple(k for k in KEY_ORDER if k in keys) + tuple(sorted(keys - set(KEY_ORDER)))


def parse_spec(text: str | AttackSpec, registry: Any = None) -> AttackSpec:
    """Parse and validate ``TYPE:key=val:...`` against the registered attacks.

    ``registry`` defaults to the process-wide plugin registry; the TYPE is resolved through it
    (case-insensitively, as every component name), so third-party attacks parse the same way.
    """
    if isinstance(text, AttackSpec):
        return text
    if not isinstance(text, str) or not text.strip():
        raise SpecError("attack spec is empty; write TYPE:key=val:..., e.g. CA:pm=+:W=1:eps=0.30196:alpha=0.011764:pgditer=32")
    raw = text.strip()
    if registry is None:
        from ..plugins import get_registry

        registry = get_registry()
    head, *fields = raw.split(":")
    type_name = head.strip()
    try:
        component = registry.component("attacks", type_name)
    except UnknownNameError as exc:
        known = ", ".join(exc.known) or "(none registered)"
        raise SpecError(f"attack spec {raw!r}: unknown attack type {type_name!r}; registered: {known}") from None
    record = component.record
    allowed = accepted_keys(record)
    params: dict[str, Any] = {}
    for item in fields:
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise SpecError(f"attack spec {raw!r}: field {item!r} is not key=value")
        if key not in allowed:
            raise SpecError(f"attack spec {raw!r}: unknown field {key!r} for {record.name}; it takes {', '.join(allowed)}")
        if key in params:
            raise SpecError(f"attack spec {raw!r}: field {key} is given twice")
        params[key] = _parse_value(raw, key, value)
    needed = [k for k in KEY_ORDER if k in record.required or (k == "pm" and record.signed)]
    for key in needed:
        if key not in params:
            example = {"pm": "pm=+", "W": "W=1", "M": "M=1"}.get(key, f"{key}=...")
            raise SpecError(f"attack spec {raw!r}: field {key} is required for {record.name} (add :{example})")
    params.setdefault("eps", DEFAULT_EPS)
    params.setdefault("alpha", DEFAULT_ALPHA)
    params.setdefault("pgditer", DEFAULT_PGDITER)
    for key in FLAG_KEYS:
        if not params.get(key, 1):
            del params[key]
    if params.get("nes") and params["pgditer"] < 2:
        raise SpecError(f"attack spec {raw!r}: nes=1 needs pgditer >= 2 (NES takes no single FGSM-like step)")
    ordered = {k: params[k] for k in KEY_ORDER if k in params}
    ordered.update({k: v for k, v in params.items() if k not in ordered})
    return AttackSpec(type=record.name, params=ordered, text=canonical_text(record.name, ordered))
