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

import json
from collections.abc import Sequence
from pathlib import Path

from ..errors import RobrankError
from ..plugins import Registry
from .html import format_html
from .latex import format_latex
from .summary import (
    PARTIAL_MARK,
    OFF_SCALE_MARK,
    FileSummary,
    Metric,
    attack_metrics,
    displays,
    load_summaries,
    off_scale,
    parsed_fields,
    profile_score,
    summarise,
)
from .tables import by_threat_model, csv_table, md_table, notes, score_groups, sections, text_table

FORMATS = ("table", "markdown", "json", "csv", "latex", "html")


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
        return csv_table(summaries)
    if fmt == "latex":
        return format_latex(summaries)
    if fmt == "html":
        return format_html(summaries)
    lines: list[str] = []
    for title, head, rows in sections(summaries):
        if lines:
            lines.append("")
        if fmt == "markdown":
            lines += [f"**{title}**", "", *md_table(head, rows)]
        else:
            lines += [title, *text_table(head, rows)]
    notes_ = notes(summaries)
    if notes_:
        lines += ["", *notes_]
    return "\n".join(lines) + "\n"


def report(paths: Sequence[str | Path], fmt: str = "table", *, registry: Registry) -> str:
    """Load results files and render them (what ``robrank report`` prints)."""
    return format_report(load_summaries(paths, registry), fmt)


__all__ = [
    "FORMATS", "PARTIAL_MARK", "OFF_SCALE_MARK", "off_scale", "Metric", "FileSummary", "attack_metrics", "displays", "parsed_fields", "profile_score", "score_groups", "summarise",
    "load_summaries", "format_report", "report",
]
