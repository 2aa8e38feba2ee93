"""Turn swipe results files into the tables of the papers (``tools/pjswipe.py``, done properly).

An ERS profile (rob28, rob224) becomes one row per results file with the ten raw scores in
the published column order, the rescaled scores and the ERS, so runs compare side by side.
Any other profile is listed attack by attack with the metric pjswipe printed for it (CA/QA
percentile, SPQA percentile and ground-truth percentile, ES shift and R@1, ...), clean next
to adversarial. A file whose swipe is unfinished shows ``n/a`` for ERS and a note naming
the missing attacks instead of the reference's silent zeros.
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
from .ers import DECIMALS, KEYS, LABELS, ers, missing, raw_scores, rescale
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

    @property
    def ers_profile(self) -> bool:
        return bool(self.payload["ers_profile"])

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
            "checkpoint": p["model"].get("checkpoint"),
            **({"model": _external_source(p["model"])} if p["model"].get("kind") == "external" else {}),
            "attacks_done": len(p["attacks"]),
            "attacks_planned": len(p["planned"]),
        }
        if self.ers_profile:
            out["raw"] = {LABELS[k]: self.raw[k] for k in KEYS}
            out["rescaled"] = {LABELS[k]: self.rescaled[k] for k in KEYS}
            out["ers"] = self.ers
            out["missing"] = self.missing
        out["attacks"] = [
            {"spec": a["spec"], "type": a["type"], "metrics": [m.__dict__ for m in attack_metrics(a)]} for a in p["attacks"]
        ]
        return out


def _pct(summary: Mapping[str, float], key: str) -> float | None:
    value = _get(summary, key)
    return None if value is None else 100.0 * value


def _get(summary: Mapping[str, float], key: str) -> float | None:
    if key in summary:
        return float(summary[key])
    matches = [k for k in summary if k.endswith(":" + key)]
    return float(summary[matches[0]]) if len(matches) == 1 else None


def attack_metrics(entry: Mapping[str, Any]) -> list[Metric]:
    """The pjswipe view of one attack (scaled to its printed range), clean and adversarial."""
    kind, orig, adv = entry["type"], entry["orig"], entry["adv"]
    if kind in ("CA", "QA"):
        return [Metric("PCTL", _pct(orig, "prank"), _pct(adv, "prank"), "100.0")]
    if kind == "SPQA":
        return [
            Metric("PCTL", _pct(orig, "prank"), _pct(adv, "prank"), "100.0"),
            Metric("GT PCTL", _pct(orig, "GTprank"), _pct(adv, "GTprank"), "100.0"),
        ]
    if kind == "ES":
        return [
            Metric("ES", _get(orig, "embshift"), _get(adv, "embshift"), "2.000", 3),
            Metric("R1", _get(orig, "r@1"), _get(adv, "r@1"), "100.0"),  # already percent
        ]
    if kind == "TMA":
        return [Metric("COS", _get(orig, "Cosine-SIM"), _get(adv, "Cosine-SIM"), "1.000", 3)]
    if kind in ("LTM", "GTM"):
        return [Metric("R1", _pct(orig, "r@1"), _pct(adv, "r@1"), "100.0")]
    if kind == "GTT":
        return [
            Metric("RETAIN1", _pct(orig, "ID-Retain@1"), _pct(adv, "ID-Retain@1"), "100.0"),
            Metric("RETAIN4", _pct(orig, "retain@4"), _pct(adv, "retain@4"), "100.0"),
        ]
    # an attack from a third-party plugin: show its own summary keys as they are
    return [Metric(k, _get(orig, k), float(v), "", 4) for k, v in adv.items()]


def _external_source(model: Mapping[str, Any]) -> dict[str, Any]:
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


def summarise(payload: dict[str, Any], path: str | Path, label: str | None = None) -> FileSummary:
    """Compute the raw/rescaled scores and ERS of one (validated) results payload."""
    label = label or f"{_run_name(payload)}/{payload['profile']}" + ("" if payload["semantics"] == "reference" else f" ({payload['semantics']})")
    summary = FileSummary(label=label, path=str(path), payload=payload)
    if summary.ers_profile:
        summary.raw = raw_scores(payload["attacks"])
        summary.rescaled = rescale(summary.raw)
        summary.missing = missing(summary.raw)
        summary.ers = None if summary.missing else ers(summary.raw)
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
                "ERS n/a until the swipe finishes (rerun the same robrank swipe command)"
                if s.ers_profile
                else f"note: {s.label}: {len(s.payload['attacks'])}/{len(s.payload['planned'])} attacks done ({what})"
            )
    for s in summaries:
        model = s.payload["model"]
        if model.get("kind") == "external":
            src = _external_source(model)
            weights = ", ".join(w[:12] for w in src["weights_sha256"]) or "none (as built)"
            notes.append(f"model: {s.label}: {src['spec']}, metric {src['metric']}, normalize {src['normalize']}, "
                         f"weights sha256 {weights}, parameters sha256 {src['sha256'][:12]}")
    return notes


def _ers_tables(rows: list[FileSummary]) -> list[tuple[str, list[str], list[list[str]]]]:
    head = ["run", *(LABELS[k] for k in KEYS), "ERS"]
    raw = [[s.label, *(_fmt(s.raw[k], DECIMALS[k]) for k in KEYS), _fmt(s.ers, 1)] for s in rows]
    scaled = [[s.label, *(_fmt(s.rescaled[k], 1) for k in KEYS), _fmt(s.ers, 1)] for s in rows]
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
    ers_rows = [s for s in summaries if s.ers_profile]
    sections = _ers_tables(ers_rows) if ers_rows else []
    sections += [_attack_table(s) for s in summaries if not s.ers_profile]
    return sections


def _csv(summaries: list[FileSummary]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if all(s.ers_profile for s in summaries):
        writer.writerow(["label", "file", "profile", "semantics", *(LABELS[k] for k in KEYS), *(f"{LABELS[k]} rescaled" for k in KEYS), "ERS"])
        for s in summaries:
            raw = ["" if s.raw[k] is None else repr(s.raw[k]) for k in KEYS]
            scaled = ["" if s.rescaled[k] is None else repr(s.rescaled[k]) for k in KEYS]
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

    CSV is one row per file (raw, rescaled, ERS) when every file is an ERS profile, and one
    row per attack metric otherwise, so that each shape stays a plain rectangular table.
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


__all__ = ["FORMATS", "Metric", "FileSummary", "attack_metrics", "summarise", "load_summaries", "format_report", "report"]
