"""Typed component parameters: the one place a spec field's type, default and range live.

An attack declares its parameters as :class:`Param` objects on its class; the spec grammar
(:mod:`robrank.attacks.spec`) parses and validates every field against them once, so the
attack itself receives clean values and never checks them again. The same declaration
drives ``robrank list attacks``, the canonical spec text and the docs, so a third-party
attack that adds a field (a momentum decay, a step schedule) gets all of that for free.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


class _Required:
    """Sentinel default of a parameter that must be given."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

_TYPE_WORDS = {int: "a whole number", float: "a number", str: "a string", bool: "0 or 1"}


class ParamError(ValueError):
    """A value that does not fit its parameter; the message names the field, not the spec."""


@dataclass(frozen=True)
class Param:
    """One typed field of a spec (``key=value``).

    ``type`` is ``int``, ``float``, ``str`` or ``bool`` (written ``0``/``1``); ``default`` is
    :data:`REQUIRED` for a field that must be given, or a value (``None`` = "decided at run
    time", e.g. from the dataset record). ``low``/``high`` bound numbers (inclusive),
    ``choices`` restricts the accepted values, ``example`` is what an error suggests.

    ``outside_class``: the field counts gallery items drawn from outside the query's class
    (candidates, targets), so it cannot exceed the gallery size minus the largest class; the
    attack runner checks that where the gallery is known (a spec alone cannot).

    ``implicit``: at its default the field is left out of the canonical spec text (and of
    ``AttackSpec.params``). Fields added after results were stored must be implicit, so every
    stored spec string keeps its meaning and its text; the reference's PGD settings are not
    implicit, their defaults are written out as the reference did.
    """

    name: str
    type: type = float
    default: Any = REQUIRED
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    help: str = ""
    example: str = ""
    implicit: bool = False
    outside_class: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self) -> str:
        """``name: a whole number >= 1`` style text of what the field accepts."""
        if self.choices:
            return " or ".join(self.format(c) for c in self.choices)
        what = _TYPE_WORDS.get(self.type, self.type.__name__)
        if self.type in (int, float):
            if self.type is float:
                what = "a finite number"
            if self.low is not None and self.high is not None:
                what += f" in [{self.format(self.low)}, {self.format(self.high)}]"
            elif self.low is not None:
                what += f" >= {self.format(self.low)}"
            elif self.high is not None:
                what += f" <= {self.format(self.high)}"
        return what

    def format(self, value: Any) -> str:
        """The canonical text of a value (floats by ``repr``, so they round-trip exactly)."""
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, float):
            return repr(value)
        return str(value)

    def parse(self, text: str) -> Any:
        """The typed value of ``text``; :class:`ParamError` (naming the field) if it does not fit."""
        text = text.strip()
        if self.type is bool:
            if text not in ("0", "1"):
                raise ParamError(f"field {self.name} must be 0 or 1 (got {text!r})")
            value: Any = text == "1"
        elif self.type is int:
            try:
                value = int(text)
            except ValueError:
                raise ParamError(f"field {self.name} must be a whole number (got {text!r})") from None
        elif self.type is float:
            try:
                value = float(text)
            except ValueError:
                raise ParamError(f"field {self.name} must be a number (got {text!r})") from None
        else:
            value = self.type(text)
        return self.check(value)

    def check(self, value: Any) -> Any:
        """``value`` converted to the field's type and checked against its range and choices."""
        if value is None and self.default is None:
            return None
        if self.type is bool:
            if value not in (0, 1, True, False):
                raise ParamError(f"field {self.name} must be 0 or 1 (got {value!r})")
            return bool(value)
        if self.type is int:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
                raise ParamError(f"field {self.name} must be {self.describe()} (got {value!r})")
            value = int(value)
        elif self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ParamError(f"field {self.name} must be {self.describe()} (got {value!r})")
            value = float(value)
        if self.choices and value not in self.choices:
            raise ParamError(f"field {self.name} must be {self.describe()} (got {value!r})")
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise ParamError(f"field {self.name} must be {self.describe()} (got {value!r})")
        return value

    def details(self) -> dict[str, Any]:
        """JSON-ready description, for ``robrank list --json``."""
        out: dict[str, Any] = {"name": self.name, "type": self.type.__name__, "required": self.required}
        if not self.required:
            out["default"] = self.default
        for key in ("low", "high"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.choices:
            out["choices"] = list(self.choices)
        if self.outside_class:
            out["outside_class"] = True
        if self.help:
            out["help"] = self.help
        if self.implicit:
            out["implicit"] = True
        return out


#: how ``KEY=VALUE`` options spell a boolean, besides 0 and 1
_FLAG_WORDS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}


def resolve_options(params: Iterable[Param], given: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """``given`` checked against the declared ``params``, each missing one at its default.

    For options given as ``KEY=VALUE`` (a defense's ``-o``, a config file): an unknown key
    or a value that does not fit its parameter is a one-line :class:`~robrank.errors.ConfigError`
    that names ``owner`` and what it accepts, so a typo never trains with a default. A
    required parameter that is missing is an error too.
    """
    declared = {p.name: p for p in params}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        shown = ", ".join(map(repr, unknown))
        if not declared:
            raise ConfigError(f"{owner} has no option {shown}; it takes no options")
        raise ConfigError(f"{owner} has no option {shown}; its options are: {', '.join(declared)}")
    values: dict[str, Any] = {}
    for name, param in declared.items():
        if name not in given:
            if param.required:
                raise ConfigError(f"{owner} needs option {name} ({param.describe()}), e.g. -o {param.example or name + '=...'}")
            values[name] = param.default
            continue
        value = given[name]
        if param.type is bool and isinstance(value, str):  # -o ics=yes: the words a command line uses for a flag
            value = _FLAG_WORDS.get(value.strip().lower(), value)
        try:
            values[name] = param.parse(value) if isinstance(value, str) and param.type is not str else param.check(value)
        except ParamError:
            raise ConfigError(f"{owner}: option {name} must be {param.describe()} (got {value!r})") from None
    return values


def collect(classes: Iterable[type], attribute: str = "params") -> tuple[Param, ...]:
    """The parameters declared by ``classes`` (base classes first), in that order.

    Each class lists only the parameters it adds (``params`` in its own body), so a field
    declared once on a base class reaches every subclass. A later (more derived) class may
    redeclare a name to change its default or range: its declaration replaces the earlier
    one in the earlier one's position.
    """
    seen: dict[str, Param] = {}
    for cls in classes:
        for param in cls.__dict__.get(attribute, ()):
            seen[param.name] = param
    return tuple(seen.values())


__all__ = ["Param", "ParamError", "REQUIRED", "collect", "resolve_options"]
