"""The report's tables, built from :class:`~.summary.FileSummary` alone: one builder per table, shared by every format.

The text and Markdown reports (:mod:`.report`), LaTeX (:mod:`.latex`) and HTML (:mod:`.html`)
lay out the same (title, header, rows) triples; only how a partial row is marked differs
(``marks``). Nothing here reads the registry: the summary already holds what the attacks
and profiles declared.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..scoring import Score
from ..summaries import ARROW_DOWN, ARROW_UP, HIGHER, LOWER, tie_note
from ..threat import threat_model
from .summary import OFF_SCALE_MARK, PARTIAL_MARK, FileSummary, column_directions, external_source, off_scale

#: one table: its title, header cells and rows of cells
Table = tuple[str, list[str], list[list[str]]]


def fmt_value(value: float | None, decimals: int) -> str:
    if value is None:
        return "n/a"
    if math.isnan(value):
        return "nan"
    return f"{value:.{decimals}f}"


def notes(summaries: Iterable[FileSummary]) -> list[str]:
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
            src = external_source(model)
            weights = ", ".join(w[:12] for w in src["weights_sha256"]) or "none (as built)"
            notes.append(f"model: {s.label}: {src['spec']}, metric {src['metric']}, normalize {src['normalize']}, "
                         f"weights sha256 {weights}, parameters sha256 {src['sha256'][:12]}")
    return notes


def score_tables(rows: list[FileSummary], marks: bool = True) -> list[Table]:
    """The raw and rescaled tables of files sharing one score; ``marks`` appends PARTIAL_MARK
    to partial rows (LaTeX and HTML mark them their own way)."""
    score = rows[0].score
    keys, labels, decimals = score.keys, score.labels, score.decimals
    head = ["run", *(labels[k] for k in keys), score.name]

    def score_cell(s: FileSummary) -> str:
        return fmt_value(s.ers, 1) + (OFF_SCALE_MARK if off_scale(s.ers) else "") + (PARTIAL_MARK if marks and s.partial and s.ers is not None else "")

    def label(s: FileSummary) -> str:
        return s.marked_label if marks else s.label

    def scaled_cell(value: float | None) -> str:
        return fmt_value(value, 1) + (OFF_SCALE_MARK if off_scale(value) else "")

    raw = [[label(s), *(fmt_value(s.raw[k], decimals[k]) for k in keys), score_cell(s)] for s in rows]
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


def attack_table(s: FileSummary, marks: bool = True) -> Table:
    rows = []
    for entry, metrics in zip(s.payload["attacks"], s.metrics):
        mark = PARTIAL_MARK if marks and entry["count"] < s.payload["queries"] else ""
        for m in metrics:
            scale = f" / {m.scale}" if m.scale else ""
            name = f"{m.name} {m.arrow}" if m.arrow else m.name
            rows.append([entry["spec"] + mark, name, fmt_value(m.orig, m.decimals), fmt_value(m.adv, m.decimals) + scale])
    p = s.payload
    title = f"{s.marked_label if marks else s.label}: {p['dataset']}, semantics {p['semantics']}, {len(p['attacks'])}/{len(p['planned'])} attacks"
    return title, ["attack", f"metric ({ARROW_UP}/{ARROW_DOWN} = more robust)", "clean", "adversarial"], rows


def _direction_title(score: Score) -> str:
    directions = column_directions(score)
    up = " ".join(k for k, v in directions.items() if v == HIGHER)
    down = " ".join(k for k, v in directions.items() if v == LOWER)
    return f"more robust: {ARROW_UP} higher {up}; {ARROW_DOWN} lower {down}"


def by_threat_model(summaries: list[FileSummary]) -> list[FileSummary]:
    """Files of several threat models (rob28 beside rob28-l2) grouped by it, each label saying its own.

    Their scores do not compare across threat models, so no table lists them mixed; copies
    are returned (a caller's summaries keep their order and labels). One threat model: as given.
    """
    threats = [threat_model(s.payload, plain=True) for s in summaries]
    order = list(dict.fromkeys(threats))
    if len(order) < 2:
        return summaries
    ranked = sorted(range(len(summaries)), key=lambda i: order.index(threats[i]))
    return [dataclasses.replace(summaries[i], label=f"{summaries[i].label} [{threats[i]}]") for i in ranked]


def text_table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(head), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def md_table(head: list[str], rows: list[list[str]]) -> list[str]:
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


def sections(summaries: list[FileSummary]) -> list[Table]:
    sections = [table for rows in score_groups(summaries) for table in score_tables(rows)]
    sections += [attack_table(s) for s in summaries if s.score is None]
    return sections


def _field_columns(field_sets: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every field name, in the order the canonical specs first list them (each attack's declared order)."""
    seen: dict[str, None] = {}
    for fields in field_sets:
        seen.update(dict.fromkeys(fields))
    return list(seen)


def _shared_fields(s: FileSummary) -> dict[str, Any]:
    """Fields with one value across every attack of a file (the PGD budget of an ERS swipe)."""
    parsed = s.fields
    if not parsed:
        return {}
    # in the first spec's (declared) order: a set's order would change with the process's hash seed
    return {k: v for k, v in parsed[0].items() if all(k in p and p[k] == v for p in parsed)}


def _value(v: Any) -> str:
    return "" if v is None else repr(v) if isinstance(v, float) else str(v)


def csv_table(summaries: list[FileSummary]) -> str:
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
        entries = [(s, entry, fields, metrics) for s in summaries for entry, fields, metrics in zip(s.payload["attacks"], s.fields, s.metrics)]
        columns = _field_columns(fields for _, _, fields, _ in entries)
        writer.writerow(["label", "file", "profile", "semantics", "partial", "attack", "type", *columns, "metric", "clean", "adversarial"])
        for s, entry, fields, metrics in entries:
            head = [s.label, s.path, s.payload["profile"], s.payload["semantics"], s.partial or "", entry["spec"], entry["type"]]
            for m in metrics:
                writer.writerow([*head, *(_value(fields.get(c)) for c in columns), m.name, _value(m.orig), _value(m.adv)])
    return buffer.getvalue()


__all__ = ["Table", "attack_table", "by_threat_model", "csv_table", "fmt_value", "md_table", "notes", "score_groups", "score_tables", "sections", "text_table"]
