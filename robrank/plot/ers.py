"""The ERS figure: the rescaled robustness scores of each run as grouped bars.

The columns, their labels and order are the profile's registered score (ERS for the bundled
ERS profiles: ten columns), so the figure works for any profile with a score. Rescaled
scores share one scale (0 = completely broken, 100 = fully robust), so the bars of different
attacks compare directly; the legend carries each run's score, their mean. A partial swipe
(attacks missing, or capped at a few batches) draws hatched bars and says so in the legend,
and its missing columns carry an ``n/a`` mark instead of a bar of zero height.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RobrankError
from ..plugins import Registry
from ..swipe.summary import load_summaries
from .figure import PAGE_WIDTH, colors, new_figure, paper_style, save

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..swipe.summary import FileSummary

#: hatch of the bars of a partial swipe
PARTIAL_HATCH = "////"


@dataclass(frozen=True)
class ErsSeries:
    """What the figure draws for one run: column labels, rescaled values (None = missing), ERS."""

    label: str
    columns: tuple[str, ...]
    values: tuple[float | None, ...]
    ers: float | None
    partial: str | None
    score: str = "ERS"

    @property
    def legend(self) -> str:
        score = f"{self.score} n/a" if self.ers is None else f"{self.score} {self.ers:.1f}"
        return f"{self.label} ({score}" + (f"; partial: {self.partial})" if self.partial else ")")


def ers_series(summaries: Sequence[FileSummary]) -> list[ErsSeries]:
    """The drawn data of :func:`ers_figure`, one entry per results file (profiles with a score only)."""
    others = [s.label for s in summaries if s.score is None]
    if others:
        raise RobrankError(
            f"plot ers needs swipes of an ERS profile, or another profile with a score (robrank list profiles); "
            f"not one: {', '.join(others)}"
        )
    names = sorted({s.score.name for s in summaries})
    if len(names) > 1:
        raise RobrankError(f"these files have different scores ({', '.join(names)}); plot each score's files separately")
    return [
        ErsSeries(
            label=s.label,
            columns=tuple(s.score.labels[k] for k in s.score.keys),
            values=tuple(s.rescaled[k] for k in s.score.keys),
            ers=s.ers,
            partial=s.partial,
            score=s.score.name,
        )
        for s in summaries
    ]


def ers_figure(summaries: Sequence[FileSummary], *, width: float = PAGE_WIDTH, height: float = 2.3) -> Figure:
    """Grouped bars of the rescaled scores, one colour per run, ERS in the legend."""
    series = ers_series(summaries)
    if not series:
        raise RobrankError("no results to plot; pass one or more swipe JSON files")
    columns = series[0].columns
    with paper_style():
        fig, ax = new_figure(width, height)
        n = len(series)
        span = 0.8
        bar = span / n
        palette = colors(n)
        lowest = 0.0
        for i, s in enumerate(series):
            xs = [c - span / 2 + bar * (i + 0.5) for c in range(len(columns))]
            heights = [0.0 if v is None else v for v in s.values]
            lowest = min(lowest, *heights)
            bars = ax.bar(
                xs, heights, width=bar * 0.92, color=palette[i], label=s.legend,
                hatch=PARTIAL_HATCH if s.partial else None, edgecolor="white" if s.partial else palette[i], linewidth=0.3,
            )
            for column, patch in zip(columns, bars.patches):
                patch.set_gid(f"ers-{i}-{column}")
            for x, v in zip(xs, s.values):
                if v is None:
                    ax.text(x, 1.0, "n/a", rotation=90, ha="center", va="bottom", fontsize=5, color=palette[i])
        ax.set_xticks(range(len(columns)), columns)
        ax.set_xlim(-0.5, len(columns) - 0.5)
        ax.set_ylim(min(0.0, lowest * 1.05), 100)
        ax.set_ylabel("rescaled score\n(0 = broken, 100 = robust)")
        ax.grid(axis="x", visible=False)
        fig.legend(loc="outside upper center", ncols=min(n, 3 if n > 4 else 2), handlelength=1.2)
    return fig


def plot_ers(results: Sequence[str | Path], output: str | Path, registry: Registry) -> Path:
    """``robrank plot ers``: load swipe files and save their ERS figure to ``output``."""
    return save(ers_figure(load_summaries(list(results), registry)), output)


__all__ = ["ErsSeries", "ers_series", "ers_figure", "plot_ers", "PARTIAL_HATCH"]
