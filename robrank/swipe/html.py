"""``robrank report -f html``: one self-contained page with the report tables and figures.

The page needs nothing but itself: styles are inline, figures are SVG embedded as data URIs
(each keeps its own ids, so two figures cannot clash), and there are no scripts, fonts or
links to fetch. It holds the report tables (one row per results file in the ERS tables,
partial results marked), the score figure (ERS) of the files whose profile has a score, and the robustness
curve when some attack varies ε, W or M. Without matplotlib the tables are still written and
the page says which figures are missing and how to get them.
"""
from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import RobrankError
from ..plot.curve import curve_figure, curve_panels
from ..plot.ers import ers_figure
from ..plot.figure import render
from ..scoring import spec_fields
from ..threat import NORM_NAMES, threat_model
from .tables import attack_table, notes, score_groups, score_tables

if TYPE_CHECKING:
    from .summary import FileSummary

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { padding: 0.2em 0.6em; text-align: right; border-bottom: 1px solid #ddd; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #444; }
tr.partial td { color: #8a5a00; background: #fff7e0; }
.badge { font-size: 0.8em; padding: 0 0.4em; border-radius: 0.3em; background: #f0b429; color: #222; }
figure { margin: 1em 0; } figure img { width: 100%; max-width: 60em; height: auto; }
figcaption, .note { font-size: 0.85em; color: #555; }
"""


def _figures(summaries: Sequence[FileSummary]) -> list[tuple[str, str, str]]:
    """(id, caption, data URI) of each figure these files allow."""
    figures: list[tuple[str, str, str]] = []
    for n, group in enumerate(score_groups(summaries)):
        name = group[0].score.name
        svg = render(ers_figure(group), "svg")
        caption = f"Rescaled {name} columns per attack (0 = broken, 100 = robust); {name} in the legend."
        figures.append((f"fig-{_slug(name)}" + (f"-{n}" if n else ""), caption, _data_uri(svg)))
    if curve_panels(summaries):
        svg = render(curve_figure(summaries), "svg")
        figures.append(("fig-curve", "Robustness curves: each attack's metric over its budget; dotted: clean value.", _data_uri(svg)))
    return figures


def budget(spec: str) -> str:
    """An attack's threat model and budget as its spec states them: ``"L∞ ε=0.30196, 32 steps of α=0.011764"``.

    A field the spec leaves out is the attack class's default, which a results file does not
    record, so the page says "default" rather than guess it.
    """
    fields = spec_fields(spec)
    norm = NORM_NAMES.get(fields.get("norm", "inf"), f"L{fields.get('norm')}")
    steps = fields.get("pgditer", "default")
    return f"{norm} ε={fields.get('eps', 'default')}, {steps} steps of α={fields.get('alpha', 'default')}"


def _attack_sections(summaries: Sequence[FileSummary], slug: str) -> list[str]:
    """Each scored file's attacks one per row: budget, measure with its direction, clean and adversarial value."""
    esc = html.escape
    out: list[str] = []
    for k, s in enumerate(summaries):
        section, head, rows = attack_table(s, marks=False)
        budgets = [budget(str(row[0])) for row in rows]
        head = [head[0], "threat model and budget", *head[1:]]
        rows = [[row[0], b, *row[1:]] for row, b in zip(rows, budgets)]
        out.append(f"<h2>Per attack, clean vs adversarial: {esc(s.label)} ({esc(threat_model(s.payload))})</h2>")
        out += _table(f"{slug}-attacks-{k}", head, rows, {}, run_rows=False)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "score"


def _data_uri(svg: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


def _table(table_id: str, head: list[str], rows: list[list[str]], partial: dict[int, str], run_rows: bool) -> list[str]:
    esc = html.escape
    out = [f'<table id="{table_id}">', "<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead>", "<tbody>"]
    for i, row in enumerate(rows):
        classes = (["run"] if run_rows else []) + (["partial"] if i in partial else [])
        attr = f' class="{" ".join(classes)}"' if classes else ""
        label = esc(row[0]) + (f' <span class="badge" title="{esc(partial[i])}">partial: {esc(partial[i])}</span>' if i in partial else "")
        out.append(f"<tr{attr}><td>{label}</td>" + "".join(f"<td>{esc(c)}</td>" for c in row[1:]) + "</tr>")
    out += ["</tbody>", "</table>"]
    return out


def format_html(
    summaries: Sequence[FileSummary], *, title: str = "robrank report", header: Sequence[str] = (), figures: bool = True
) -> str:
    """The whole page; ``header`` lines go first (what ``robrank run`` trained), ``figures=False`` leaves figures out."""
    esc = html.escape
    body: list[str] = [f"<h1>{esc(title)}</h1>"]
    if header:
        body.append("<ul>" + "".join(f"<li>{esc(line)}</li>" for line in header) + "</ul>")
    files = ", ".join(esc(s.path) for s in summaries)
    body.append(f'<p class="note">{len(summaries)} results file(s): {files}</p>')
    if figures:
        try:
            drawn = _figures(summaries)
        except RobrankError as exc:
            if "matplotlib" not in str(exc):
                raise
            drawn = []
            body.append(f'<p class="note">figures left out: {esc(str(exc))}</p>')
        for fig_id, caption, uri in drawn:
            body.append(f'<figure id="{fig_id}"><img src="{uri}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>')
    for g, group in enumerate(score_groups(summaries)):
        partial = {i: s.partial for i, s in enumerate(group) if s.partial}
        slug = _slug(group[0].score.name) + (f"-{g}" if g else "")
        for n, (section, head, rows) in enumerate(score_tables(group, marks=False)):
            body.append(f"<h2>{esc(section)}</h2>")
            body += _table(f"{slug}-{('raw', 'rescaled')[n]}", head, rows, partial, run_rows=True)
        body += _attack_sections(group, slug)
    for k, s in enumerate(x for x in summaries if x.score is None):
        section, head, rows = attack_table(s, marks=False)
        body.append(f"<h2>{esc(section)}" + (f' <span class="badge">partial: {esc(s.partial)}</span>' if s.partial else "") + "</h2>")
        body += _table(f"attacks-{k}", head, rows, {}, run_rows=False)
    footnotes = notes(summaries)
    if footnotes:
        body.append("<ul class=\"note\">" + "".join(f"<li>{esc(n)}</li>" for n in footnotes) + "</ul>")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{esc(title)}</title>",
            f"<style>{STYLE}</style>",
            "</head>",
            "<body>",
            *body,
            "</body>",
            "</html>",
        ]
    ) + "\n"


__all__ = ["format_html"]
