"""The attack-spec grammar ``TYPE:key=val:key=val...``.

The reference parsed specs with two loose regular expressions, so a typo such as ``W=x``
or ``pm=*`` surfaced much later as an assertion deep inside an attack (or silently
became a default). Here a spec is validated up front, and only here, against the typed
fields the attack class declares (:class:`robrank.params.Param`, collected in its
:class:`~robrank.records.AttackRecord`): every problem becomes a one-line
:class:`~robrank.errors.SpecError` that names the offending field, and every valid spec has
one canonical text (fields in the attack's declared order, defaults filled in), so two
spellings of the same attack compare and store equal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError, UnknownNameError
from ..plugins import Registry
from ..params import ParamError
from .defaults import DEFAULT_ALPHA, DEFAULT_EPS, DEFAULT_PGDITER, PM


@dataclass(frozen=True)
class AttackSpec:
    """A validated attack: registered ``type``, typed ``params`` (defaults filled), canonical ``text``.

    ``params`` holds exactly the fields of the canonical text: those given, and the defaults
    of the fields that are not ``implicit``; the attack fills in the rest from its
    declaration when it is built.
    """

    type: str
    params: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    def __str__(self) -> str:
        return self.text

    @property
    def label(self) -> str:
        """Short display name, e.g. ``CA+`` or ``ES``."""
        return f"{self.type}{self.params.get(PM.name, '')}"


def accepted_keys(record: Any) -> tuple[str, ...]:
    """The spec fields an attack takes, in canonical order."""
    return tuple(p.name for p in record.params)


def canonical(record: Any, params: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The fields of the canonical text (declared order; implicit fields only off their default) and the text."""
    ordered: dict[str, Any] = {}
    parts = [record.name]
    for param in record.params:
        if param.name in params:
            value = params[param.name]
        elif param.required or param.implicit:
            continue
        else:
            value = param.default
        if param.implicit and value == param.default:
            continue
        ordered[param.name] = value
        parts.append(f"{param.name}={param.format(value)}")
    return ordered, ":".join(parts)


def parse_spec(text: str | AttackSpec, registry: Registry) -> AttackSpec:
    """Parse and validate ``TYPE:key=val:...`` against the registered attacks.

    The TYPE is resolved through ``registry``
    (case-insensitively, as every component name), so third-party attacks parse the same way.
    """
    if isinstance(text, AttackSpec):
        return text
    if not isinstance(text, str) or not text.strip():
        raise SpecError("attack spec is empty; write TYPE:key=val:... (robrank list attacks shows each TYPE and its fields)")
    raw = text.strip()
    head, *items = raw.split(":")
    type_name = head.strip()
    try:
        component = registry.component("attacks", type_name)
    except UnknownNameError as exc:
        known = ", ".join(exc.known) or "(none registered)"
        raise SpecError(f"attack spec {raw!r}: unknown attack type {type_name!r}; registered: {known}") from None
    record = component.record
    declared = {p.name: p for p in record.params}
    params: dict[str, Any] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise SpecError(f"attack spec {raw!r}: field {item!r} is not key=value")
        if key not in declared:
            raise SpecError(f"attack spec {raw!r}: unknown field {key!r} for {record.name}; it takes {', '.join(declared)}")
        if key in params:
            raise SpecError(f"attack spec {raw!r}: field {key} is given twice")
        try:
            params[key] = declared[key].parse(value)
        except ParamError as exc:
            raise SpecError(f"attack spec {raw!r}: {exc}") from None
    for param in record.params:
        if param.required and param.name not in params:
            example = param.example or f"{param.name}=..."
            raise SpecError(f"attack spec {raw!r}: field {param.name} is required for {record.name} (add :{example})")
    if record.check is not None:
        values = {p.name: params.get(p.name, p.default) for p in record.params}
        try:
            record.check(values)
        except ParamError as exc:
            raise SpecError(f"attack spec {raw!r}: {exc}") from None
    ordered, canonical_text = canonical(record, params)
    return AttackSpec(type=record.name, params=ordered, text=canonical_text)


__all__ = ["AttackSpec", "parse_spec", "accepted_keys", "canonical", "DEFAULT_EPS", "DEFAULT_ALPHA", "DEFAULT_PGDITER"]
