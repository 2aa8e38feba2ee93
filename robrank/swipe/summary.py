"""What a report knows about one results file: its scores, and each attack's metrics as its attack shows them.

Summarising is the one step of reporting that reads the registry (which attack declares
which display, which profile has which score, how a spec parses); the tables, the formats
and the figures read the :class:`FileSummary` alone, so they need no registry and import
nothing above them.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..attacks.spec import parse_spec
from ..errors import RobrankError
from ..plugins import Registry
from ..scoring import Score, spec_fields
from ..summaries import ARROW_DOWN, ARROW_UP, HIGHER, LOWER, MetricDisplay, plain
from .schema import load_results, partial_note

#: appended to the label and the score of a partial result; the footnote says what it covers
PARTIAL_MARK = "*"
#: appended to a rescaled value (or score) outside the 0-100 scale it is printed on; a note says why
OFF_SCALE_MARK = "!"
#: the scale of every rescaled column and score
SCALE = (0.0, 100.0)


def off_scale(value: float | None) -> bool:
    """Whether a rescaled value lies outside 0-100 (a forced profile, E-metric shifts beyond 2)."""
    return value is not None and math.isfinite(value) and not SCALE[0] <= value <= SCALE[1]


@dataclass(frozen=True)
class Metric:
    """One pjswipe line: a name, clean and adversarial values, and its full scale."""

    name: str
    orig: float | None
    adv: float | None
    scale: str
    decimals: int = 1
    #: "higher" or "lower": the direction that is more robust (None: a side measure)
    robust: str | None = None

    @property
    def arrow(self) -> str:
        return {HIGHER: ARROW_UP, LOWER: ARROW_DOWN}.get(self.robust or "", "")


@dataclass
class FileSummary:
    """Everything the formats print about one results file."""

    label: str
    path: str
    payload: dict[str, Any]
    raw: dict[str, float | None] = field(default_factory=dict)
    rescaled: dict[str, float | None] = field(default_factory=dict)
    ers: float | None = None
    missing: list[str] = field(default_factory=list)
    #: the profile's registered score (None: the profile has none, or is not installed)
    score: Score | None = None
    #: per attack of ``payload["attacks"]`` (same order): its metrics as its attack declares them shown
    metrics: list[list[Metric]] = field(default_factory=list)
    #: per attack: its spec's fields as values (:func:`parsed_fields`)
    fields: list[dict[str, Any]] = field(default_factory=list)
    #: per attack: its short display name (``CA+``, ``ES``; the type for a spec no plugin parses)
    labels: list[str] = field(default_factory=list)
    #: per attack: which way its first metric is robust, as a registered profile score declares (:func:`declared_direction`)
    directions: list[str | None] = field(default_factory=list)

    @property
    def marked_label(self) -> str:
        return self.label + (PARTIAL_MARK if self.partial else "")

    @property
    def off_scale(self) -> list[str]:
        """Labels of the rescaled columns (and the score) outside 0-100: never to be read as on that scale."""
        if self.score is None:
            return []
        labels = self.score.labels
        out = [labels[k] for k in self.score.keys if off_scale(self.rescaled.get(k))]
        return out + ([self.score.name] if off_scale(self.ers) else [])

    @property
    def ers_profile(self) -> bool:
        return self.score is not None

    @property
    def unfinished(self) -> list[str]:
        done = {a["spec"] for a in self.payload["attacks"]}
        return [s for s in self.payload["planned"] if s not in done]

    @property
    def partial(self) -> str | None:
        """What the numbers cover when they are not a full result (``"16 of 364 queries"``,
        ``"5 of 9 attacks"``), or None: :func:`robrank.swipe.schema.partial_note`, computed
        from the file's attacks. Every output that shows a number of this file (tables, CSV,
        JSON, LaTeX, HTML, figures) marks it with this, so a quick check is never read as a result.
        """
        return partial_note(self.payload)

    def as_dict(self) -> dict[str, Any]:
        p = self.payload
        out: dict[str, Any] = {
            "label": self.label,
            "file": self.path,
            "profile": p["profile"],
            "semantics": p["semantics"],
            "dataset": p["dataset"],
            "checkpoint": p["model"].get("checkpoint"),
            **({"model": external_source(p["model"])} if p["model"].get("kind") == "external" else {}),
            "attacks_done": len(p["attacks"]),
            "attacks_planned": len(p["planned"]),
            "partial": self.partial,
            "top_ties": p.get("top_ties"),
        }
        if self.score is not None:
            labels = self.score.labels
            out["score"] = self.score.name
            out["raw"] = {labels[k]: self.raw[k] for k in self.score.keys}
            out["rescaled"] = {labels[k]: self.rescaled[k] for k in self.score.keys}
            out["ers"] = self.ers
            out["missing"] = self.missing
            out["off_scale"] = self.off_scale
            out["robust"] = column_directions(self.score)
        out["attacks"] = [
            {"spec": a["spec"], "type": a["type"], "metrics": [m.__dict__ for m in metrics]} for a, metrics in zip(p["attacks"], self.metrics)
        ]
        return out


def displays(attack_type: str, adv: Mapping[str, Any], registry: Registry) -> tuple[MetricDisplay, ...]:
    """How to show an attack's metrics: what its registered class declares, else each key as it is."""
    if ("attacks", attack_type) in registry:
        declared = registry.get("attacks", attack_type).display
        if declared:
            return tuple(declared)
    return tuple(plain(k) for k in adv)


def attack_metrics(entry: Mapping[str, Any], registry: Registry) -> list[Metric]:
    """One attack's metrics as its attack declares them shown (scaled to their printed range)."""
    orig, adv = entry["orig"], entry["adv"]
    fields = spec_fields(str(entry.get("spec", "")))
    return [
        Metric(d.label, d.value(orig), d.value(adv), d.full_text, d.decimals, d.robust_direction(fields))
        for d in displays(str(entry["type"]), adv, registry)
    ]


def column_directions(score: Score) -> dict[str, str]:
    """Per score column label, "higher" or "lower": the direction of the raw value that is more robust."""
    out = {}
    for c in score.columns:
        slope = c.rescale(c.factor * 1.0) - c.rescale(0.0)
        out[c.label] = HIGHER if slope > 0 else LOWER
    return out


def profile_score(name: str, registry: Registry) -> Score | None:
    """The registered profile's score, or None (no score, or the profile is not installed)."""
    if ("profiles", name) not in registry:
        return None
    return registry.get("profiles", name).score


def external_source(model: Mapping[str, Any]) -> dict[str, Any]:
    """What a report shows of a model from outside robrank: its spec, weights digests, metric, normalisation."""
    return {
        "spec": model["spec"],
        "weights_sha256": [w["sha256"] for w in model["weights"]],
        "metric": model["metric"],
        "normalize": model["normalize"].get("name"),
        "sha256": model["sha256"],
    }


def _run_name(payload: Mapping[str, Any]) -> str:
    model = payload["model"]
    if model.get("kind") == "external":
        spec = str(model["spec"])
        return Path(spec).name if "/" in spec and ":" not in spec else spec
    if model.get("run_dir"):
        return Path(model["run_dir"]).name
    return Path(model["checkpoint"]).name


def summarise(payload: dict[str, Any], path: str | Path, registry: Registry, label: str | None = None) -> FileSummary:
    """Compute the raw/rescaled columns and the profile's score of one (validated) results payload."""
    label = label or f"{_run_name(payload)}/{payload['profile']}" + ("" if payload["semantics"] == "reference" else f" ({payload['semantics']})")
    summary = FileSummary(label=label, path=str(path), payload=payload)
    summary.metrics = [attack_metrics(entry, registry) for entry in payload["attacks"]]
    summary.fields = [parsed_fields(entry["spec"], registry) for entry in payload["attacks"]]
    summary.labels = [_attack_label(entry, registry) for entry in payload["attacks"]]
    summary.directions = [_direction(entry, fields, label, registry) for entry, fields, label in zip(payload["attacks"], summary.fields, summary.labels)]
    score = profile_score(payload["profile"], registry) if payload["ers_profile"] else None
    if score is not None:
        summary.score = score
        summary.raw = score.raw_scores(payload["attacks"])
        summary.rescaled = score.rescale(summary.raw)
        summary.missing = score.missing(summary.raw)
        summary.ers = None if summary.missing else score.value(summary.raw)
    return summary


def load_summaries(paths: Sequence[str | Path], registry: Registry) -> list[FileSummary]:
    """Load, validate and summarise several files, making their labels unique."""
    if not paths:
        raise RobrankError("no results files given; pass one or more JSON files written by robrank swipe")
    summaries = [summarise(load_results(p, registry), p, registry) for p in paths]
    counts: dict[str, int] = {}
    for s in summaries:
        counts[s.label] = counts.get(s.label, 0) + 1
    seen: dict[str, int] = {}
    for s in summaries:
        if counts[s.label] > 1:
            s.label = f"{s.label} [{s.path}]"
            seen[s.label] = seen.get(s.label, 0) + 1
            if seen[s.label] > 1:  # the same file given twice
                s.label = f"{s.label} #{seen[s.label]}"
    return summaries


def parsed_fields(spec: str, registry: Registry) -> dict[str, Any]:
    """An attack spec's fields (``pm``, ``W``, ``M``, ``eps``, ...) as values, by robrank's spec parser.

    A spec of an attack no installed plugin provides cannot be parsed; it yields ``{}``, so
    its row keeps its spec string and blank field columns rather than failing the report.
    """
    try:
        return dict(parse_spec(spec, registry).params)
    except RobrankError:
        return {}


def declared_direction(label: str, params: dict[str, Any], key: str, registry: Registry) -> str | None:
    """"higher" or "lower" (is robust), as a registered profile score rescales this attack's metric; None if none does.

    A score column says how a raw value maps to 0 = broken .. 100 = robust; the sign of
    that map is the direction, declared by the profile rather than guessed here.
    """
    attack = label.rstrip("+-")
    fields = {k: str(v) for k, v in params.items()}
    for component in registry.components("profiles"):
        score = component.record.score
        for column in score.columns if score is not None else ():
            if column.attack == attack and column.metric == key and all(fields.get(k) == v for k, v in column.where.items()):
                slope = (column.rescale(column.factor) - column.rescale(0.0))
                if slope:
                    return "higher" if slope > 0 else "lower"
    return None


def _direction(entry: Mapping[str, Any], fields: dict[str, Any], label: str, registry: Registry) -> str | None:
    shown = displays(str(entry["type"]), entry["adv"], registry)
    return declared_direction(label, fields, shown[0].key, registry) if shown else None


def _attack_label(entry: Mapping[str, Any], registry: Registry) -> str:
    try:
        return parse_spec(entry["spec"], registry).label
    except RobrankError:
        return str(entry["type"])


__all__ = [
    "PARTIAL_MARK", "OFF_SCALE_MARK", "off_scale", "column_directions", "Metric", "FileSummary", "attack_metrics", "declared_direction", "displays", "external_source", "parsed_fields", "profile_score",
    "summarise", "load_summaries",
]
