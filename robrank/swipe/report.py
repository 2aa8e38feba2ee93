"""Turn swipe results files into the tables of the papers (the reference code's ``pjswipe`` script, done properly).

A profile with a score (the ERS profiles rob28 and rob224, or a third-party profile's own)
becomes one row per results file with the raw column values in the score's order, the
rescaled ones and the score, so runs compare side by side; the profile's registered
:class:`~robrank.scoring.Score` says what the columns are. Any other profile is listed
attack by attack, each metric shown the way its attack declares (``Attack.display``: label,
scale, full range), clean next to adversarial. A file whose swipe is unfinished shows
``n/a`` for the score and a note naming the missing columns instead of the reference's
silent zeros.
A partial result (a quick check with ``-m``, an unfinished swipe) carries
:data:`PARTIAL_MARK` on its label and score in every format, with a footnote saying how much
it covers, so it is never read beside a full result as if it were one.
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
from ..scoring import spec_fields
from ..summaries import ARROW_DOWN, ARROW_UP, HIGHER, LOWER, MetricDisplay, plain, tie_note
from .schema import load_results, partial_note

FORMATS = ("table", "markdown", "json", "csv", "latex", "html")
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
            **({"model": _external_source(p["model"])} if p["model"].get("kind") == "external" else {}),
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


def _direction_title(score: Score) -> str:
    directions = column_directions(score)
    up = " ".join(k for k, v in directions.items() if v == HIGHER)
    down = " ".join(k for k, v in directions.items() if v == LOWER)
    return f"more robust: {ARROW_UP} higher {up}; {ARROW_DOWN} lower {down}"


def profile_score(name: str, registry: Any = None) -> Score | None:
    """The registered profile's score, or None (no score, or the profile is not installed)."""
    registry = _registry(registry)
    if ("profiles", name) not in registry:
        return None
    return registry.get("profiles", name).score


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
        if s.partial:
            notes.append(f"{PARTIAL_MARK} {s.label}: partial result, {s.partial}; not comparable with a full swipe")
        if s.unfinished:
            what = f"missing {', '.join(s.missing)}" if s.ers_profile and s.missing else f"{len(s.unfinished)} attacks not run"
            notes.append(
                f"note: {s.label}: {len(s.payload['attacks'])}/{len(s.payload['planned'])} attacks done ({what}); "
                f"{s.score.name} n/a until the swipe finishes (rerun the same robrank swipe command)"
                if s.ers_profile
                else f"note: {s.label}: {len(s.payload['attacks'])}/{len(s.payload['planned'])} attacks done ({what})"
            )
    for s in summaries:
        if s.off_scale:
            notes.append(f"{OFF_SCALE_MARK} {s.label}: rescaled {', '.join(s.off_scale)} outside the 0-100 scale "
                         f"({'the profile was forced on other images' if s.payload.get('forced') else 'see docs/swipe-format.md'}); "
                         "not comparable with 0-100 scores")
        stored = s.payload.get("top_ties")  # percent
        tied = tie_note(None if stored is None else stored / 100.0)
        if tied:
            notes.append(tied.replace("note: ", f"note: {s.label}: ", 1))
    for s in summaries:
        model = s.payload["model"]
        if model.get("kind") == "external":
            src = _external_source(model)
            weights = ", ".join(w[:12] for w in src["weights_sha256"]) or "none (as built)"
            notes.append(f"model: {s.label}: {src['spec']}, metric {src['metric']}, normalize {src['normalize']}, "
                         f"weights sha256 {weights}, parameters sha256 {src['sha256'][:12]}")
    return notes


def _score_tables(rows: list[FileSummary], marks: bool = True) -> list[tuple[str, list[str], list[list[str]]]]:
    """The raw and rescaled tables of files sharing one score; ``marks`` appends PARTIAL_MARK
    to partial rows (LaTeX and HTML mark them their own way)."""
    score = rows[0].score
    keys, labels, decimals = score.keys, score.labels, score.decimals
    head = ["run", *(labels[k] for k in keys), score.name]

    def score_cell(s: FileSummary) -> str:
        return _fmt(s.ers, 1) + (OFF_SCALE_MARK if off_scale(s.ers) else "") + (PARTIAL_MARK if marks and s.partial and s.ers is not None else "")

    def label(s: FileSummary) -> str:
        return s.marked_label if marks else s.label

    def scaled_cell(value: float | None) -> str:
        return _fmt(value, 1) + (OFF_SCALE_MARK if off_scale(value) else "")

    raw = [[label(s), *(_fmt(s.raw[k], decimals[k]) for k in keys), score_cell(s)] for s in rows]
    scaled = [[label(s), *(scaled_cell(s.rescaled[k]) for k in keys), score_cell(s)] for s in rows]
    tables = [(f"Raw scores ({_direction_title(score)})", head, raw),
              ("Rescaled scores (0 = broken, 100 = robust: higher = more robust)", head, scaled)]
    won = {id(s): score.winners(s.payload["attacks"]) for s in rows}
    if any(won.values()):  # a worst-case swipe among them: what the stronger searches added, and at what cost
        cost_head = ["run", "gradients/query", *(labels[k] for k in keys)]
        cost = [[s.label, _gradients(s), *(_beaten(won[id(s)].get(labels[k])) for k in keys)] for s in rows]
        tables.append(("Search cost, and the share of queries where a search beat plain PGD (worst case)", cost_head, cost))
    return tables


def _gradients(s: FileSummary) -> str:
    """Gradient evaluations per query over the whole profile, if every attack recorded its budget."""
    attacks = s.payload["attacks"]
    if not attacks or any("budget" not in a for a in attacks):
        return "n/a"
    return f"{sum(float(a['budget'].get('gradients', 0.0)) for a in attacks):g}"


def _beaten(counts: Mapping[str, int] | None) -> str:
    """Percent of queries a member other than the first (plain PGD, which wins ties) won."""
    if not counts:
        return "-"
    total = sum(counts.values())
    first = next(iter(counts.values()))
    return "n/a" if total == 0 else f"{100.0 * (total - first) / total:.0f}%"


def _attack_table(s: FileSummary, marks: bool = True) -> tuple[str, list[str], list[list[str]]]:
    rows = []
    for entry in s.payload["attacks"]:
        mark = PARTIAL_MARK if marks and entry["count"] < s.payload["queries"] else ""
        for m in attack_metrics(entry):
            scale = f" / {m.scale}" if m.scale else ""
            name = f"{m.name} {m.arrow}" if m.arrow else m.name
            rows.append([entry["spec"] + mark, name, _fmt(m.orig, m.decimals), _fmt(m.adv, m.decimals) + scale])
    p = s.payload
    title = f"{s.marked_label if marks else s.label}: {p['dataset']}, semantics {p['semantics']}, {len(p['attacks'])}/{len(p['planned'])} attacks"
    return title, ["attack", f"metric ({ARROW_UP}/{ARROW_DOWN} = more robust)", "clean", "adversarial"], rows


def _text_table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(head), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    esc = [[c.replace("|", "\\|").replace(PARTIAL_MARK, "\\" + PARTIAL_MARK) for c in r] for r in [head, *rows]]
    align = ["---", *(["---:"] * (len(head) - 1))]
    return [f"| {' | '.join(esc[0])} |", f"| {' | '.join(align)} |", *(f"| {' | '.join(r)} |" for r in esc[1:])]


def score_groups(summaries: Sequence[FileSummary]) -> list[list[FileSummary]]:
    """The files with a profile score, grouped by score (first-seen order): one table, one figure each."""
    scores: dict[Score, list[FileSummary]] = {}
    for s in summaries:
        if s.score is not None:
            scores.setdefault(s.score, []).append(s)
    return list(scores.values())


def _sections(summaries: list[FileSummary]) -> list[tuple[str, list[str], list[list[str]]]]:
    sections = [table for rows in score_groups(summaries) for table in _score_tables(rows)]
    sections += [_attack_table(s) for s in summaries if s.score is None]
    return sections


def parsed_fields(spec: str) -> dict[str, Any]:
    """An attack spec's fields (``pm``, ``W``, ``M``, ``eps``, ...) as values, by robrank's spec parser.

    A spec of an attack no installed plugin provides cannot be parsed; it yields ``{}``, so
    its row keeps its spec string and blank field columns rather than failing the report.
    """
    from ..attacks.spec import parse_spec

    try:
        return dict(parse_spec(spec).params)
    except RobrankError:
        return {}


def _field_columns(field_sets: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every field name, in the order the canonical specs first list them (each attack's declared order)."""
    seen: dict[str, None] = {}
    for fields in field_sets:
        seen.update(dict.fromkeys(fields))
    return list(seen)


def _shared_fields(s: FileSummary) -> dict[str, Any]:
    """Fields with one value across every attack of a file (the PGD budget of an ERS swipe)."""
    parsed = [parsed_fields(a["spec"]) for a in s.payload["attacks"]]
    if not parsed:
        return {}
    keys = set.intersection(*(set(p) for p in parsed))
    return {k: parsed[0][k] for k in keys if all(p[k] == parsed[0][k] for p in parsed)}


def _value(v: Any) -> str:
    return "" if v is None else repr(v) if isinstance(v, float) else str(v)


def _csv(summaries: list[FileSummary]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    scores = {s.score for s in summaries}
    if len(scores) == 1 and None not in scores:
        score = summaries[0].score
        keys, labels = score.keys, score.labels
        shared = [_shared_fields(s) for s in summaries]
        columns = _field_columns(shared)
        writer.writerow(["label", "file", "profile", "semantics", "partial", *columns, *(labels[k] for k in keys),
                         *(f"{labels[k]} rescaled" for k in keys), score.name])
        for s, fields in zip(summaries, shared):
            raw = ["" if s.raw[k] is None else repr(s.raw[k]) for k in keys]
            scaled = ["" if s.rescaled[k] is None else repr(s.rescaled[k]) for k in keys]
            head = [s.label, s.path, s.payload["profile"], s.payload["semantics"], s.partial or ""]
            writer.writerow([*head, *(_value(fields.get(c)) for c in columns), *raw, *scaled, "" if s.ers is None else repr(s.ers)])
    else:
        entries = [(s, entry, parsed_fields(entry["spec"])) for s in summaries for entry in s.payload["attacks"]]
        columns = _field_columns(fields for _, _, fields in entries)
        writer.writerow(["label", "file", "profile", "semantics", "partial", "attack", "type", *columns, "metric", "clean", "adversarial"])
        for s, entry, fields in entries:
            head = [s.label, s.path, s.payload["profile"], s.payload["semantics"], s.partial or "", entry["spec"], entry["type"]]
            for m in attack_metrics(entry):
                writer.writerow([*head, *(_value(fields.get(c)) for c in columns), m.name, _value(m.orig), _value(m.adv)])
    return buffer.getvalue()


def by_threat_model(summaries: list[FileSummary]) -> list[FileSummary]:
    """Files of several threat models (rob28 beside rob28-l2) grouped by it, each label saying its own.

    Their scores do not compare across threat models, so no table lists them mixed; copies
    are returned (a caller's summaries keep their order and labels). One threat model: as given.
    """
    from dataclasses import replace

    from ..threat import threat_model

    threats = [threat_model(s.payload, plain=True) for s in summaries]
    order = list(dict.fromkeys(threats))
    if len(order) < 2:
        return summaries
    ranked = sorted(range(len(summaries)), key=lambda i: order.index(threats[i]))
    return [replace(summaries[i], label=f"{summaries[i].label} [{threats[i]}]") for i in ranked]


def format_report(summaries: list[FileSummary], fmt: str = "table") -> str:
    """Render summaries as ``table`` (aligned text), ``markdown``, ``json``, ``csv``, ``latex`` or ``html``.

    CSV is one row per file (raw, rescaled, score) when every file has the same profile
    score, and one row per attack metric otherwise, so that each shape stays a plain
    rectangular table; both carry the attack settings as columns of their own (see
    :func:`parsed_fields`). LaTeX is booktabs tabulars (:mod:`.latex`); HTML one
    self-contained page with the figures (:mod:`.html`).
    """
    if fmt not in FORMATS:
        raise RobrankError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    summaries = by_threat_model(summaries)
    if fmt == "json":
        return json.dumps([s.as_dict() for s in summaries], indent=2) + "\n"
    if fmt == "csv":
        return _csv(summaries)
    if fmt == "latex":
        from .latex import format_latex

        return format_latex(summaries)
    if fmt == "html":
        from .html import format_html

        return format_html(summaries)
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


__all__ = [
    "FORMATS", "PARTIAL_MARK", "OFF_SCALE_MARK", "off_scale", "Metric", "FileSummary", "attack_metrics", "displays", "parsed_fields", "profile_score", "score_groups", "summarise",
    "load_summaries", "format_report", "report",
]
