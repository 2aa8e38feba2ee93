"""Turn swipe results files into the tables of the papers (the reference code's ``pjswipe`` script, done properly).

A profile with a score (the ERS profiles rob28 and rob224, or a third-party profile's own)
becomes one row per results file with the raw column values in the score's order, the
rescaled ones and the score, so runs compare side by side; the profile's registered
:class:`~robrank.scoring.Score` says what the columns are. Any other profile is listed
attack by attack, each metric shown the way its attack declares (``Attack.display``: label,
scale, full range), clean next to adversarial. A file whose swipe is unfinished shows
``n/a`` for the score and a note naming the missing columns instead of the reference's
silent zeros.
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RobrankError
from ..scoring import Score
from ..summaries import MetricDisplay, plain
from .schema import load_results

FORMATS = ("table", "markdown", "json", "csv")


@dataclass(frozen=True)
class Metric:
    """One pjswipe line: a name, clean and adversarial values, and its full scale."""

    name: str
    orig: float | None
    adv: float | None
    scale: str
    decimals: int = 1


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

    @property
    def ers_profile(self) -> bool:
        return self.score is not None

    @property
    def unfinished(self) -> list[str]:
        done = {a["spec"] for a in self.payload["attacks"]}
        return [s for s in self.payload["planned"] if s not in done]

    def as_dict(self) -> dict[str, Any]:
        p = self.payload
        out: dict[str, Any] = {
            "label": self.label,
            "file": self.path,
            "profile": p["profile"],
            "semantics": p["semantics"],
            "dataset": p["dataset"],
            "checkpoint": p["model"]["checkpoint"],
            "attacks_done": len(p["attacks"]),
            "attacks_planned": len(p["planned"]),
        }
        if self.score is not None:
            labels = self.score.labels
            out["score"] = self.score.name
            out["raw"] = {labels[k]: self.raw[k] for k in self.score.keys}
            out["rescaled"] = {labels[k]: self.rescaled[k] for k in self.score.keys}
            out["ers"] = self.ers
            out["missing"] = self.missing
        out["attacks"] = [
            {"spec": a["spec"], "type": a["type"], "metrics": [m.__dict__ for m in attack_metrics(a)]} for a in p["attacks"]
        ]
        return out


def _registry(registry: Any) -> Any:
    if registry is not None:
        return registry
    from ..plugins import get_registry

    return get_registry()


def displays(attack_type: str, adv: Mapping[str, Any], registry: Any = None) -> tuple[MetricDisplay, ...]:
    """How to show an attack's metrics: what its registered class declares, else each key as it is."""
    registry = _registry(registry)
    if ("attacks", attack_type) in registry:
        declared = registry.get("attacks", attack_type).display
        if declared:
            return tuple(declared)
    return tuple(plain(k) for k in adv)


def attack_metrics(entry: Mapping[str, Any], registry: Any = None) -> list[Metric]:
    """One attack's metrics as its attack declares them shown (scaled to their printed range)."""
    orig, adv = entry["orig"], entry["adv"]
    return [
        Metric(d.label, d.value(orig), d.value(adv), d.full_text, d.decimals)
        for d in displays(str(entry["type"]), adv, registry)
    ]


def profile_score(name: str, registry: Any = None) -> Score | None:
    """The registered profile's score, or None (no score, or the profile is not installed)."""
    registry = _registry(registry)
    if ("profiles", name) not in registry:
        return None
    return registry.get("profiles", name).score


def _run_name(payload: Mapping[str, Any]) -> str:
    model = payload["model"]
    if model.get("run_dir"):
        return Path(model["run_dir"]).name
    return Path(model["checkpoint"]).name


def summarise(payload: dict[str, Any], path: str | Path, label: str | None = None) -> FileSummary:
    """Compute the raw/rescaled columns and the profile's score of one (validated) results payload."""
    label = label or f"{_run_name(payload)}/{payload['profile']}" + ("" if payload["semantics"] == "reference" else f" ({payload['semantics']})")
    summary = FileSummary(label=label, path=str(path), payload=payload)
    score = profile_score(payload["profile"]) if payload["ers_profile"] else None
    if score is not None:
        summary.score = score
        summary.raw = score.raw_scores(payload["attacks"])
        summary.rescaled = score.rescale(summary.raw)
        summary.missing = score.missing(summary.raw)
        summary.ers = None if summary.missing else score.value(summary.raw)
    return summary


def load_summaries(paths: Sequence[str | Path]) -> list[FileSummary]:
    """Load, validate and summarise several files, making their labels unique."""
    if not paths:
        raise RobrankError("no results files given; pass one or more JSON files written by robrank swipe")
    summaries = [summarise(load_results(p), p) for p in paths]
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


def _fmt(value: float | None, decimals: int) -> str:
    if value is None:
        return "n/a"
    if math.isnan(value):
        return "nan"
    return f"{value:.{decimals}f}"


def _notes(summaries: Iterable[FileSummary]) -> list[str]:
    notes = []
    for s in summaries:
        if s.unfinished:
            what = f"missing {', '.join(s.missing)}" if s.ers_profile and s.missing else f"{len(s.unfinished)} attacks not run"
            notes.append(
                f"note: {s.label}: {len(s.payload['attacks'])}/{len(s.payload['planned'])} attacks done ({what}); "
                f"{s.score.name} n/a until the swipe finishes (rerun the same robrank swipe command)"
                if s.ers_profile
                else f"note: {s.label}: {len(s.payload['attacks'])}/{len(s.payload['planned'])} attacks done ({what})"
            )
    return notes


def _score_tables(rows: list[FileSummary]) -> list[tuple[str, list[str], list[list[str]]]]:
    score = rows[0].score
    keys, labels, decimals = score.keys, score.labels, score.decimals
    head = ["run", *(labels[k] for k in keys), score.name]
    raw = [[s.label, *(_fmt(s.raw[k], decimals[k]) for k in keys), _fmt(s.ers, 1)] for s in rows]
    scaled = [[s.label, *(_fmt(s.rescaled[k], 1) for k in keys), _fmt(s.ers, 1)] for s in rows]
    return [("Raw scores", head, raw), ("Rescaled scores (0 = broken, 100 = robust)", head, scaled)]


def _attack_table(s: FileSummary) -> tuple[str, list[str], list[list[str]]]:
    rows = []
    for entry in s.payload["attacks"]:
        for m in attack_metrics(entry):
            scale = f" / {m.scale}" if m.scale else ""
            rows.append([entry["spec"], m.name, _fmt(m.orig, m.decimals), _fmt(m.adv, m.decimals) + scale])
    p = s.payload
    title = f"{s.label}: {p['dataset']}, semantics {p['semantics']}, {len(p['attacks'])}/{len(p['planned'])} attacks"
    return title, ["attack", "metric", "clean", "adversarial"], rows


def _text_table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(head), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    esc = [[c.replace("|", "\\|") for c in r] for r in [head, *rows]]
    align = ["---", *(["---:"] * (len(head) - 1))]
    return [f"| {' | '.join(esc[0])} |", f"| {' | '.join(align)} |", *(f"| {' | '.join(r)} |" for r in esc[1:])]


def _sections(summaries: list[FileSummary]) -> list[tuple[str, list[str], list[list[str]]]]:
    scores: dict[Score, list[FileSummary]] = {}
    for s in summaries:
        if s.score is not None:
            scores.setdefault(s.score, []).append(s)
    sections = [table for rows in scores.values() for table in _score_tables(rows)]
    sections += [_attack_table(s) for s in summaries if s.score is None]
    return sections


def _csv(summaries: list[FileSummary]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    scores = {s.score for s in summaries}
    if len(scores) == 1 and None not in scores:
        score = summaries[0].score
        keys, labels = score.keys, score.labels
        writer.writerow(["label", "file", "profile", "semantics", *(labels[k] for k in keys), *(f"{labels[k]} rescaled" for k in keys), score.name])
        for s in summaries:
            raw = ["" if s.raw[k] is None else repr(s.raw[k]) for k in keys]
            scaled = ["" if s.rescaled[k] is None else repr(s.rescaled[k]) for k in keys]
            writer.writerow([s.label, s.path, s.payload["profile"], s.payload["semantics"], *raw, *scaled, "" if s.ers is None else repr(s.ers)])
    else:
        writer.writerow(["label", "file", "profile", "semantics", "attack", "metric", "clean", "adversarial"])
        for s in summaries:
            for entry in s.payload["attacks"]:
                for m in attack_metrics(entry):
                    writer.writerow([s.label, s.path, s.payload["profile"], s.payload["semantics"], entry["spec"], m.name, "" if m.orig is None else repr(m.orig), "" if m.adv is None else repr(m.adv)])
    return buffer.getvalue()


def format_report(summaries: list[FileSummary], fmt: str = "table") -> str:
    """Render summaries as ``table`` (aligned text), ``markdown``, ``json`` or ``csv``.

    CSV is one row per file (raw, rescaled, score) when every file has the same profile
    score, and one row per attack metric otherwise, so that each shape stays a plain rectangular table.
    """
    if fmt not in FORMATS:
        raise RobrankError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps([s.as_dict() for s in summaries], indent=2) + "\n"
    if fmt == "csv":
        return _csv(summaries)
    lines: list[str] = []
    for title, head, rows in _sections(summaries):
        if lines:
            lines.append("")
        if fmt == "markdown":
            lines += [f"**{title}**", "", *_md_table(head, rows)]
        else:
            lines += [title, *_text_table(head, rows)]
    notes = _notes(summaries)
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def report(paths: Sequence[str | Path], fmt: str = "table") -> str:
    """Load results files and render them (what ``robrank report`` prints)."""
    return format_report(load_summaries(paths), fmt)


__all__ = ["FORMATS", "Metric", "FileSummary", "attack_metrics", "displays", "profile_score", "summarise", "load_summaries", "format_report", "report"]
