"""The ERS figure: the rescaled robustness scores of each run as grouped bars.

The columns, their labels and order are the profile's registered score (ERS for the bundled
ERS profiles: ten columns), so the figure works for any profile with a score. Rescaled
scores share one scale (0 = completely broken, 100 = fully robust), so the bars of different
attacks compare directly; the legend carries each run's score, their mean. A partial swipe
(attacks missing, or capped at a few batches) draws hatched bars and says so in the legend,
and its missing columns carry an ``n/a`` mark instead of a bar of zero height, while a score
of zero draws a mark on the axis. Runs measured in different threat models (L-infinity
beside L2) are never drawn in one panel: each threat model gets its own, titled with it.
The legend sits below the panels and wraps long run names (a sweep's cell names) to the
figure's width, at any width.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RobrankError
from ..plugins import Registry
from ..swipe.summary import load_summaries
from ..threat import threat_model
from .figure import PAGE_WIDTH, blank_figure, colors, legend_below, paper_style, save

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
    threat: str = ""

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
            threat=_threat_of(s),
        )
        for s in summaries
    ]


def _threat_of(summary: Any) -> str:
    """A summary's threat model: its ``threat`` if it says one, else read from its results payload ("" if neither)."""
    given = getattr(summary, "threat", None)
    if given:
        return str(given)
    payload = getattr(summary, "payload", None)
    return threat_model(payload) if isinstance(payload, Mapping) else ""


def ers_figure(summaries: Sequence[FileSummary], *, width: float = PAGE_WIDTH, height: float = 2.0) -> Figure:
    """Grouped bars of the rescaled scores, one colour per run, ERS in the legend; one panel per threat model.

    ``height`` is that of one panel; the legend sits below the panels, wrapped to the width,
    and adds its own height.
    """
    series = ers_series(summaries)
    if not series:
        raise RobrankError("no results to plot; pass one or more swipe JSON files")
    columns = series[0].columns
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(series):
        groups.setdefault(s.threat, []).append(i)
    palette = colors(len(series))
    with paper_style():
        fig = blank_figure(width, height * len(groups))
        axes = fig.subplots(nrows=len(groups), squeeze=False, sharex=True, sharey=True)[:, 0]
        handles = []
        lowest = 0.0
        for ax, (threat, members) in zip(axes, groups.items()):
            for slot, i in enumerate(members):
                handles.append(_draw_run(ax, series[i], i, slot, len(members), palette[i]))
                lowest = min(lowest, *(v for v in series[i].values if v is not None))
            if threat:
                ax.set_title(f"threat model: {threat}", loc="left")
            ax.set_ylabel("rescaled score\n(0 = broken, 100 = robust)")
            ax.grid(axis="x", visible=False)
            ax.set_xticks(range(len(columns)), columns)
            ax.tick_params(axis="x", labelbottom=True)
        axes[0].set_xlim(-0.5, len(columns) - 0.5)
        axes[0].set_ylim(min(0.0, lowest * 1.05), 100)
        legend_below(fig, handles, [series[i].legend for i in range(len(series))], body_height=height * len(groups))
    return fig


def _draw_run(ax: Any, s: ErsSeries, i: int, slot: int, slots: int, color: Any) -> Any:
    """One run's bars in its slot of each column group; a zero gets a visible mark, a missing value ``n/a``."""
    span = 0.8
    bar = span / slots
    xs = [c - span / 2 + bar * (slot + 0.5) for c in range(len(s.columns))]
    heights = [0.0 if v is None else v for v in s.values]
    bars = ax.bar(
        xs, heights, width=bar * 0.92, color=color, hatch=PARTIAL_HATCH if s.partial else None,
        edgecolor="white" if s.partial else color, linewidth=0.3,
    )
    for column, patch in zip(s.columns, bars.patches):
        patch.set_gid(f"ers-{i}-{column}")
    for column, x, v in zip(s.columns, xs, s.values):
        if v is None:
            ax.text(x, 1.0, "n/a", rotation=90, ha="center", va="bottom", fontsize=5, color=color)
        elif v == 0.0:  # a score of zero is a result: a mark on the axis, unlike the nothing of a missing one
            (mark,) = ax.plot([x], [0.0], marker="_", markersize=max(3.0, bar * 40), markeredgewidth=2.0, color=color,
                              clip_on=False, zorder=3)
            mark.set_gid(f"ers-zero-{i}-{column}")
            ax.text(x, 1.0, "0", ha="center", va="bottom", fontsize=5, color=color)
    return bars


def plot_ers(results: Sequence[str | Path], output: str | Path, registry: Registry) -> Path:
    """``robrank plot ers``: load swipe files and save their ERS figure to ``output``."""
    return save(ers_figure(load_summaries(list(results), registry)), output)


__all__ = ["ErsSeries", "ers_series", "ers_figure", "plot_ers", "PARTIAL_HATCH"]
