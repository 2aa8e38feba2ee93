"""``robrank report -f latex``: the report tables as booktabs tabulars, ready for a paper.

Columns keep the published order (the same sections as the text report: raw scores with
the profile's score, then the rescaled scores; per-attack tables for other profiles). A partial result
(attacks missing, queries capped) gets a dagger after its label and a footnote row naming
why, and its missing cells print as ``--``: a quick check cannot pass for a table entry.
Needs ``\\usepackage{booktabs}`` in the document.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .tables import attack_table, score_groups, score_tables

if TYPE_CHECKING:
    from .summary import FileSummary

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\u2191": r"$\uparrow$",
    "\u2193": r"$\downarrow$",
}
DAGGER = r"$^\dagger$"


def escape(text: str) -> str:
    """Text safe inside a LaTeX table cell (a trailing ``-`` sign becomes a real minus)."""
    out = re.sub("[\\\\&%$#_{}~^\u2191\u2193]", lambda m: _SPECIAL[m.group(0)], text)
    return re.sub(r"(?<=\w)-$", "$-$", out)


def _cell(text: str) -> str:
    return "--" if text in ("n/a", "nan") else escape(text)


def _tabular(title: str, head: list[str], rows: list[list[str]], partial: dict[int, str]) -> list[str]:
    align = "l" + "r" * (len(head) - 1)
    lines = [
        f"% {title}",
        f"\\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(escape(h) for h in head) + r" \\",
        r"\midrule",
    ]
    for i, row in enumerate(rows):
        label = escape(row[0]) + (DAGGER if i in partial else "")
        lines.append(" & ".join([label, *(_cell(c) for c in row[1:])]) + r" \\")
    lines.append(r"\bottomrule")
    for i, reason in partial.items():
        lines.append(f"\\multicolumn{{{len(head)}}}{{l}}{{\\footnotesize {DAGGER} {escape(rows[i][0])}: partial ({escape(reason)})}} \\\\")
    lines.append(r"\end{tabular}")
    return lines


def format_latex(summaries: Sequence[FileSummary]) -> str:
    """Every report section as one booktabs tabular, separated by blank lines."""
    blocks: list[list[str]] = []
    for group in score_groups(summaries):
        partial = {i: s.partial for i, s in enumerate(group) if s.partial}
        for title, head, rows in score_tables(group, marks=False):
            blocks.append(_tabular(title, head, rows, partial))
    for s in summaries:
        if s.score is None:
            title, head, rows = attack_table(s, marks=False)
            lines = _tabular(title, head, rows, {})
            if s.partial:
                lines.insert(-1, f"\\multicolumn{{{len(head)}}}{{l}}{{\\footnotesize {DAGGER} {escape(s.label)}: partial ({escape(s.partial)})}} \\\\")
                lines[0] += " (partial)"
            blocks.append(lines)
    header = ["% robrank report; needs \\usepackage{booktabs}"]
    return "\n".join(header + ["\n".join(b) + "\n" for b in blocks]).rstrip("\n") + "\n"


__all__ = ["escape", "format_latex"]
