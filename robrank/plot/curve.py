"""Robustness curves: an attack's metric against its budget ε (or its W/M), one line per run.

Any swipe whose attacks differ only in a budget field becomes a curve: specs are parsed with
robrank's own spec parser, attacks are grouped into one panel per attack (type and sign),
and the field that varies inside a panel is the x axis: ε when it varies (α and the step
count travel with ε in the reference's profiles and are not separate axes), else W or M.
Whatever else varies inside a panel (W at two budgets, say) splits a run into several
lines. The y axis is the attack's first report metric on its printed scale; each line's
clean value is drawn as a dotted level in the line's colour. Panels of the same unit share
their y range by default (one spanning 1 to 5 next to one spanning 2 to 94 would draw
unequal changes equally steep), each panel's title says which direction of its metric is
robust, and attacks under different threat models (norms) get panels and rows of their own.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RobrankError
from ..plugins import Registry
from ..swipe.summary import load_summaries
from ..threat import NORM_NAMES
from .figure import PAGE_WIDTH, blank_figure, colors, legend_below, paper_style, save

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..swipe.summary import FileSummary

#: spec fields that can be the x axis, in order of preference; ε is shown in units of 1/255
AXES: tuple[str, ...] = ("eps", "W", "M")
#: fields that follow ε in every profile (never an axis, never a line of their own)
TIED_TO_EPS: frozenset[str] = frozenset({"alpha", "pgditer"})
#: most panels in one row
PANELS_PER_ROW = 4


@dataclass
class CurveLine:
    """One drawn line: its label, x values (sorted), metric values and the clean level."""

    label: str
    run: int
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    clean: float | None = None
    partial: str | None = None


@dataclass
class CurvePanel:
    """One attack (type and sign): its x field, metric name and lines."""

    title: str
    axis: str
    metric: str
    scale: str
    lines: list[CurveLine] = field(default_factory=list)
    #: the threat model's norm as specs write it ("inf" or "2")
    norm: str = "inf"
    #: which way the metric is good for the model: "higher", "lower", or None when nothing says
    better: str | None = None

    @property
    def threat(self) -> str:
        return NORM_NAMES.get(self.norm, f"L{self.norm}")

    def heading(self, with_threat: bool = False) -> str:
        """The panel's title: the attack (and its threat model), and which direction of its metric means robust."""
        arrow = {"higher": "↑ more robust", "lower": "↓ more robust"}.get(self.better or "", "direction unknown")
        return f"{self.title}{', ' + self.threat if with_threat else ''} ({arrow})"

    @property
    def ylabel(self) -> str:
        if not self.scale:
            return self.metric
        top = float(self.scale)
        return f"{self.metric} (0-{top:g})"

    @property
    def xlabel(self) -> str:
        if self.axis != "eps":
            return f"{self.axis} ({self.threat})"
        return "ε (L∞, ×1/255)" if self.norm == "inf" else f"ε ({self.threat})"


def _x(axis: str, value: Any, norm: str = "inf") -> float:
    return 255.0 * float(value) if axis == "eps" and norm == "inf" else float(value)


def curve_panels(summaries: Sequence[FileSummary]) -> list[CurvePanel]:
    """Group every file's attacks into panels and lines (the data :func:`curve_figure` draws).

    A panel is one attack under one threat model: an L2 curve is never drawn on the axes of
    an L-infinity one (their ε are different quantities). Panels come grouped by threat model.
    """
    # (norm, attack label) -> list of (file index, params, metric, the direction its profile score declares)
    points: dict[tuple[str, str], list[tuple[int, dict[str, Any], Any, str]]] = {}
    for i, s in enumerate(summaries):
        for fields, metrics, label, direction in zip(s.fields, s.metrics, s.labels, s.directions):
            if not metrics:
                continue
            norm = str(fields.get("norm", "inf"))
            points.setdefault((norm, label), []).append((i, dict(fields), metrics[0], direction))
    norms = list(dict.fromkeys(norm for norm, _ in points))
    panels = []
    for norm, title in sorted(points, key=lambda k: norms.index(k[0])):
        panel = _panel(summaries, norm, title, points[(norm, title)])
        if panel is not None:
            panels.append(panel)
    return panels


def _panel(summaries: Sequence[FileSummary], norm: str, title: str, entries: list[tuple[int, dict[str, Any], Any, str]]) -> CurvePanel | None:
    varying = {k for k in AXES if any(len({p.get(k) for j, p, _, _ in entries if j == i}) > 1 for i in range(len(summaries)))}
    axis = next((k for k in AXES if k in varying), None)
    if axis is None:
        return None
    first = entries[0][2]
    panel = CurvePanel(title=title, axis=axis, metric=first.name, scale=first.scale, norm=norm)
    lines: dict[tuple[Any, ...], CurveLine] = {}
    rest = sorted(k for k in varying if k != axis)
    for i, params, metric, _ in entries:
        key = (i, *(params.get(k) for k in rest))
        if key not in lines:
            extra = ", ".join(_budget(k, params.get(k), norm) for k in rest)
            label = summaries[i].label + (f", {extra}" if extra else "")
            lines[key] = CurveLine(label=label, run=i, partial=summaries[i].partial)
        line = lines[key]
        if metric.adv is None or not math.isfinite(metric.adv):
            continue
        line.x.append(_x(axis, params[axis], norm))
        line.y.append(float(metric.adv))
        if metric.orig is not None and math.isfinite(metric.orig) and line.clean is None:
            line.clean = float(metric.orig)
    for line in lines.values():
        pairs = sorted(zip(line.x, line.y))
        line.x, line.y = [p[0] for p in pairs], [p[1] for p in pairs]
    # a file that ran this attack at one budget only (an ERS swipe next to a curve) has no curve here
    panel.lines = [line for line in lines.values() if len(line.x) > 1]
    if not panel.lines:
        return None
    panel.better = entries[0][3] or observed_direction(panel)
    return panel


def _budget(key: str, value: Any, norm: str) -> str:
    if key == "eps":
        return f"ε={255 * value:.0f}/255" if norm == "inf" else f"ε={value:g}"
    return f"{key}={value:g}"


def observed_direction(panel: CurvePanel) -> str | None:
    """Which way is robust, read from the lines: the attack moves its metric away from the clean level, towards broken."""
    moved = [y - line.clean for line in panel.lines if line.clean is not None for y in line.y]
    total = sum(moved)
    if not moved or abs(total) < 1e-9:
        return None
    return "higher" if total < 0 else "lower"


def curve_figure(summaries: Sequence[FileSummary], *, width: float = PAGE_WIDTH, panel_height: float = 1.9,
                 shared_y: bool = True) -> Figure:
    """One panel per attack and threat model, its metric over ε (or W/M), one line per run; clean levels dotted.

    With ``shared_y`` (the default) panels whose metric has the same unit (the same full
    range, e.g. percentages out of 100) share one y range, so equally steep lines are equally
    large changes; each threat model starts a row of its own.
    """
    panels = curve_panels(summaries)
    if not panels:
        raise RobrankError(
            "nothing to draw a curve of: no attack in these files varies eps, W or M; "
            "swipe a profile that does (robrank list profiles)"
        )
    rows = _rows(panels)
    ncols = max(len(row) for row in rows)
    # one colour per line label, the same in every panel
    names = list(dict.fromkeys(line.label for p in panels for line in p.lines))
    palette = dict(zip(names, colors(len(names))))
    with paper_style():
        fig = blank_figure(width, panel_height * len(rows))
        grid = fig.subplots(nrows=len(rows), ncols=ncols, squeeze=False)
        handles: dict[str, Any] = {}
        placed: list[tuple[Any, CurvePanel]] = []
        for r, row in enumerate(rows):
            for c in range(ncols):
                ax = grid[r][c]
                if c >= len(row):
                    ax.set_visible(False)
                    continue
                _draw_panel(ax, row[c], palette, handles, with_threat=len({p.norm for p in panels}) > 1)
                placed.append((ax, row[c]))
        if shared_y:
            _share_y(placed)
        from matplotlib.lines import Line2D  # optional: matplotlib (plot extra)

        handles["clean (no attack)"] = Line2D([], [], color="0.3", linestyle=":", linewidth=0.8)
        legend_below(fig, list(handles.values()), list(handles), body_height=panel_height * len(rows), handlelength=2.0)
    return fig


def _rows(panels: list[CurvePanel]) -> list[list[CurvePanel]]:
    """Rows of at most PANELS_PER_ROW panels; a new threat model starts a new row."""
    rows: list[list[CurvePanel]] = []
    for panel in panels:
        if not rows or len(rows[-1]) == PANELS_PER_ROW or rows[-1][-1].norm != panel.norm:
            rows.append([])
        rows[-1].append(panel)
    return rows


def _draw_panel(ax: Any, panel: CurvePanel, palette: dict[str, Any], handles: dict[str, Any], with_threat: bool) -> None:
    for j, line in enumerate(panel.lines):
        color = palette[line.label]
        style = "--" if line.partial else "-"
        label = line.label + (f" (partial: {line.partial})" if line.partial else "")
        (drawn,) = ax.plot(line.x, line.y, style, marker="o", color=color, label=label)
        drawn.set_gid(f"curve-{panel.title}-{j}")
        handles.setdefault(label, drawn)
        if line.clean is not None:
            ax.axhline(line.clean, color=color, linestyle=":", linewidth=0.8)
    ax.set_title(panel.heading(with_threat))
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel(panel.ylabel)


def _share_y(placed: list[tuple[Any, CurvePanel]]) -> None:
    """One y range for the panels of each unit (their full range), padded like matplotlib's own margins."""
    units: dict[str, list[Any]] = {}
    for ax, panel in placed:
        units.setdefault(panel.scale or panel.metric, []).append(ax)
    for axes in units.values():
        if len(axes) < 2:
            continue
        lows, highs = zip(*(ax.get_ylim() for ax in axes))
        low, high = min(lows), max(highs)
        for ax in axes:
            ax.set_ylim(low, high)


def plot_curve(results: Sequence[str | Path], output: str | Path, registry: Registry, *, shared_y: bool = True) -> Path:
    """``robrank plot curve``: load swipe files and save their curve figure to ``output``."""
    return save(curve_figure(load_summaries(list(results), registry), shared_y=shared_y), output)


__all__ = ["CurveLine", "CurvePanel", "curve_panels", "curve_figure", "observed_direction", "plot_curve"]
