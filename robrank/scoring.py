"""Profile scores: a robustness number computed from a swipe's adversarial summaries.

A profile that defines a score (the bundled ERS profiles do; so can a third-party one)
hands its :class:`Score` to its :class:`~robrank.records.ProfileRecord`. The score is a
list of :class:`Column` objects, each saying which attack (type and spec fields) fills it,
which adversarial summary value it reads, how that raw value is rescaled to "0 = broken,
100 = robust", and how many decimals tables print. The score is the plain mean of the
rescaled columns. Nothing here knows any attack by name: the columns do.

A missing column is never a silent zero (the reference's ``pjswipe`` used 0.0): it stays
``None`` and :meth:`Score.value` refuses to average an incomplete set.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import RobrankError
from .summaries import lookup


class IncompleteScoresError(RobrankError):
    """A score asked for while some of its columns have no result."""


def _identity(value: float) -> float:
    return value


@dataclass(frozen=True)
class Column:
    """One score column: ``raw = factor * adv[metric]`` of the attack ``attack`` whose spec has ``where``.

    ``where`` holds spec fields as written in the spec text (``{"pm": "+"}``); ``rescale``
    maps the raw value to 0 (broken) .. 100 (robust); ``decimals`` is how tables print the
    raw value (the rescaled one always gets one decimal).
    """

    key: str
    label: str
    attack: str
    metric: str
    where: Mapping[str, str] = field(default_factory=dict, hash=False)
    factor: float = 1.0
    rescale: Callable[[float], float] = _identity
    decimals: int = 1

    def matches(self, attack_type: str, fields: Mapping[str, str]) -> bool:
        return attack_type == self.attack and all(fields.get(k) == v for k, v in self.where.items())


def spec_fields(spec: str) -> dict[str, str]:
    """The ``key=value`` fields of a spec text, as written (no registry needed)."""
    out: dict[str, str] = {}
    for item in spec.split(":")[1:]:
        key, sep, value = item.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _field(entry: Any, name: str) -> Any:
    return entry[name] if isinstance(entry, Mapping) else getattr(entry, name)


def _type_of(entry: Any, spec: str) -> str:
    try:
        value = _field(entry, "type")
    except (KeyError, AttributeError):
        value = None
    return str(value) if value else re.match(r"[^:]*", spec).group(0)


@dataclass(frozen=True)
class Score:
    """A profile's score: its ``name`` (as tables title it) and its columns, in table order."""

    name: str
    columns: tuple[Column, ...]
    summary: str = ""

    def __post_init__(self) -> None:
        keys = [c.key for c in self.columns]
        if not keys or len(set(keys)) != len(keys):
            raise ValueError(f"score {self.name!r} needs at least one column and distinct column keys, got {keys}")

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.columns)

    @property
    def labels(self) -> dict[str, str]:
        return {c.key: c.label for c in self.columns}

    @property
    def decimals(self) -> dict[str, int]:
        return {c.key: c.decimals for c in self.columns}

    def details(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": [{"key": c.key, "label": c.label, "attack": c.attack, "where": dict(c.where), "metric": c.metric} for c in self.columns],
        }

    def raw_scores(self, results: Iterable[Any] | Mapping[str, Any]) -> dict[str, float | None]:
        """The raw column values from attack results (``AttackResult`` objects or results-file entries).

        ``results`` may also be a whole swipe results payload (its ``attacks`` list is used).
        Attacks that fill no column are ignored; a column filled twice is an error, since the
        score of a file mixing two settings of one attack would be meaningless.
        """
        if isinstance(results, Mapping):
            results = results["attacks"]
        raw: dict[str, float | None] = dict.fromkeys(self.keys)
        source: dict[str, str] = {}
        types = {c.attack for c in self.columns}
        for entry in results:
            spec = str(_field(entry, "spec"))
            attack_type = _type_of(entry, spec)
            if attack_type not in types:
                continue
            fields = spec_fields(spec)
            hits = [c for c in self.columns if c.matches(attack_type, fields)]
            if not hits:
                wanted = "; ".join(f"{c.label} needs {':'.join(f'{k}={v}' for k, v in c.where.items())}" for c in self.columns if c.attack == attack_type)
                raise RobrankError(f"attack {spec!r} fills no {self.name} column ({wanted}); cannot tell which column it is")
            adv = _field(entry, "adv")
            for column in hits:
                if raw[column.key] is not None:
                    raise RobrankError(f"both {source[column.key]!r} and {spec!r} fill the {self.name} column {column.label}; {self.name} needs one result per column")
                value = lookup(adv, column.metric)
                if value is None:
                    raise RobrankError(f"the adversarial summary of {spec!r} has no {column.metric!r} value (keys: {', '.join(sorted(adv))}); the results file is not a swipe of this attack")
                raw[column.key] = column.factor * value
                source[column.key] = spec
        return raw

    def as_raw(self, raw: Mapping[str, float | None] | Sequence[float | None]) -> dict[str, float | None]:
        """Raw scores keyed by column (from a mapping, or a sequence in column order)."""
        if isinstance(raw, Mapping):
            unknown = set(raw) - set(self.keys)
            if unknown:
                raise RobrankError(f"unknown raw-score keys {sorted(unknown)}; expected {', '.join(self.keys)}")
            return {k: (None if raw.get(k) is None else float(raw[k])) for k in self.keys}
        values = list(raw)
        if len(values) != len(self.keys):
            raise RobrankError(f"{self.name} needs {len(self.keys)} raw scores ({', '.join(self.labels.values())}), got {len(values)}")
        return {k: (None if v is None else float(v)) for k, v in zip(self.keys, values)}

    def missing(self, raw: Mapping[str, float | None] | Sequence[float | None]) -> list[str]:
        """Column labels without a score."""
        labels = self.labels
        return [labels[k] for k, v in self.as_raw(raw).items() if v is None]

    def rescale(self, raw: Mapping[str, float | None] | Sequence[float | None]) -> dict[str, float | None]:
        """Each raw score mapped to "0 = broken, 100 = robust" by its column (None stays None)."""
        r = self.as_raw(raw)
        return {c.key: (None if r[c.key] is None else c.rescale(r[c.key])) for c in self.columns}

    def value(self, raw: Mapping[str, float | None] | Sequence[float | None]) -> float:
        """The arithmetic mean of the rescaled columns (unrounded; print it with one decimal)."""
        absent = self.missing(raw)
        if absent:
            raise IncompleteScoresError(
                f"{self.name} needs all {len(self.columns)} columns; missing {', '.join(absent)} "
                "(finish the swipe: rerun the same robrank swipe command)"
            )
        scaled = self.rescale(raw)
        return sum(scaled[k] for k in self.keys) / len(self.keys)

    def winners(self, results: Iterable[Any] | Mapping[str, Any]) -> dict[str, dict[str, int]]:
        """Per column filled by a worst case over searches (``opt=worst``): queries won by each member.

        Read from the entry's ``wins`` for the column's metric (docs/autoattack.md); columns
        of plain attacks are left out, so the result is empty for a plain swipe.
        """
        if isinstance(results, Mapping):
            results = results["attacks"]
        out: dict[str, dict[str, int]] = {}
        for entry in results:
            wins = entry.get("wins") if isinstance(entry, Mapping) else getattr(entry, "wins", None)
            if not wins:
                continue
            spec = str(_field(entry, "spec"))
            attack_type, fields = _type_of(entry, spec), spec_fields(spec)
            for column in self.columns:
                if column.matches(attack_type, fields) and column.metric in wins:
                    out[column.label] = {name: int(n) for name, n in wins[column.metric].items()}
        return out

    def block(self, results: Iterable[Any] | Mapping[str, Any]) -> dict[str, Any]:
        """The score object of a results file: raw and rescaled columns and the score itself."""
        raw = self.raw_scores(results)
        return {"name": self.name, "raw": raw, "rescaled": self.rescale(raw), "ers": self.value(raw)}


__all__ = ["Column", "Score", "IncompleteScoresError", "spec_fields"]
