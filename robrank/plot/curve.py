"""Robustness curves: an attack's metric against its budget ε (or its W/M), one line per run.

Any swipe whose attacks differ only in a budget field becomes a curve: specs are parsed with
robrank's own spec parser, attacks are grouped into one panel per attack (type and sign),
and the field that varies inside a panel is the x axis: ε when it varies (α and the step
count travel with ε in the reference's profiles and are not separate axes), else W or M.
Whatever else varies inside a panel (W at two budgets, say) splits a run into several
lines. The y axis is the attack's first report metric on its printed scale; each line's
clean value is drawn as a dotted level in the line's colour.
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
from .figure import PAGE_WIDTH, colors, new_figure, paper_style, save

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

    @property
    def ylabel(self) -> str:
        if not self.scale:
            return self.metric
        top = float(self.scale)
        return f"{self.metric} (0-{top:g})"

    @property
    def xlabel(self) -> str:
        return "ε (×1/255)" if self.axis == "eps" else self.axis


def _x(axis: str, value: Any) -> float:
    return 255.0 * float(value) if axis == "eps" else float(value)


def curve_panels(summaries: Sequence[FileSummary]) -> list[CurvePanel]:
    """Group every file's attacks into panels and lines (the data :func:`curve_figure` draws)."""
    # (file index, panel title) -> list of (params, metric)
    points: dict[str, list[tuple[int, dict[str, Any], Any]]] = {}
    order: list[str] = []
    for i, s in enumerate(summaries):
        for fields, metrics, label in zip(s.fields, s.metrics, s.labels):
            if not metrics:
                continue
            if label not in points:
                points[label] = []
                order.append(label)
            points[label].append((i, dict(fields), metrics[0]))
    panels = []
    for title in order:
        entries = points[title]
        varying = {k for k in AXES if any(len({p.get(k) for j, p, _ in entries if j == i}) > 1 for i in range(len(summaries)))}
        axis = next((k for k in AXES if k in varying), None)
        if axis is None:
            continue
        first = entries[0][2]
        panel = CurvePanel(title=title, axis=axis, metric=first.name, scale=first.scale)
        lines: dict[tuple[Any, ...], CurveLine] = {}
        rest = sorted(k for k in varying if k != axis)
        for i, params, metric in entries:
            key = (i, *(params.get(k) for k in rest))
            if key not in lines:
                extra = ", ".join(f"{k}={params.get(k):g}" if k != "eps" else f"ε={255 * params['eps']:.0f}/255" for k in rest)
                label = summaries[i].label + (f", {extra}" if extra else "")
                lines[key] = CurveLine(label=label, run=i, partial=summaries[i].partial)
            line = lines[key]
            if metric.adv is None or not math.isfinite(metric.adv):
                continue
            line.x.append(_x(axis, params[axis]))
            line.y.append(float(metric.adv))
            if metric.orig is not None and math.isfinite(metric.orig) and line.clean is None:
                line.clean = float(metric.orig)
        for line in lines.values():
            pairs = sorted(zip(line.x, line.y))
            line.x, line.y = [p[0] for p in pairs], [p[1] for p in pairs]
        # a file that ran this attack at one budget only (an ERS swipe next to a curve) has no curve here
        panel.lines = [line for line in lines.values() if len(line.x) > 1]
        if panel.lines:
            panels.append(panel)
    return panels


def curve_figure(summaries: Sequence[FileSummary], *, width: float = PAGE_WIDTH, panel_height: float = 1.9) -> Figure:
    """One panel per attack, its metric over ε (or W/M), one line per run; clean levels dotted."""
    panels = curve_panels(summaries)
    if not panels:
        raise RobrankError(
            "nothing to draw a curve of: no attack in these files varies eps, W or M; "
            "swipe a profile that does (robrank list profiles)"
        )
    ncols = min(PANELS_PER_ROW, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    # one colour per line label, the same in every panel
    names = list(dict.fromkeys(line.label for p in panels for line in p.lines))
    palette = dict(zip(names, colors(len(names))))
    with paper_style():
        fig, axes = new_figure(width, panel_height * nrows + 0.5, nrows=nrows, ncols=ncols)
        axes = [axes] if not hasattr(axes, "flat") else list(axes.flat)
        handles: dict[str, Any] = {}
        for ax, panel in zip(axes, panels):
            for j, line in enumerate(panel.lines):
                color = palette[line.label]
                style = "--" if line.partial else "-"
                label = line.label + (f" (partial: {line.partial})" if line.partial else "")
                (drawn,) = ax.plot(line.x, line.y, style, marker="o", color=color, label=label)
                drawn.set_gid(f"curve-{panel.title}-{j}")
                handles.setdefault(label, drawn)
                if line.clean is not None:
                    ax.axhline(line.clean, color=color, linestyle=":", linewidth=0.8)
            ax.set_title(panel.title)
            ax.set_xlabel(panel.xlabel)
            ax.set_ylabel(panel.ylabel)
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
        from matplotlib.lines import Line2D

        handles["clean (no attack)"] = Line2D([], [], color="0.3", linestyle=":", linewidth=0.8)
        fig.legend(list(handles.values()), list(handles), loc="outside upper center", ncols=min(len(handles), 3), handlelength=2.0)
    return fig


def plot_curve(results: Sequence[str | Path], output: str | Path, registry: Registry) -> Path:
    """``robrank plot curve``: load swipe files and save their curve figure to ``output``."""
    return save(curve_figure(load_summaries(list(results), registry)), output)


__all__ = ["CurveLine", "CurvePanel", "curve_panels", "curve_figure", "plot_curve"]
