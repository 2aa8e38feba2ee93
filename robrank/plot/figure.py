"""Figures without pyplot: one paper style, and files that are the same bytes for the same input.

matplotlib is an optional dependency (the ``plot`` extra) and is imported only here, when a
figure is made, so ``import robrank`` stays light. Figures are plain
:class:`matplotlib.figure.Figure` objects drawn on the Agg canvas: no pyplot state, no GUI
backend, nothing that depends on the machine's display. Sizes are in inches of a two-column
paper (one column 3.5 in, the full text width 7.16 in) with 8 pt text, so a figure drops into
a paper without rescaling its fonts. Saved files carry no date, no matplotlib version and
SVG ids from a fixed salt: tests and ``git diff`` can compare them byte for byte.
"""
from __future__ import annotations

import contextlib
import io
import re
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RobrankError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: inches: one column and the full text width of a two-column paper
COLUMN_WIDTH = 3.5
PAGE_WIDTH = 7.16
#: PNG resolution (dots per inch); PNG is the default output
DPI = 200
#: file suffix -> matplotlib format
SUFFIXES: dict[str, str] = {".png": "png", ".svg": "svg", ".pdf": "pdf"}

#: the paper style; text stays text in SVG (``svg.fonttype: none``) so values can be read back
STYLE: dict[str, Any] = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.linewidth": 0.4,
    "grid.alpha": 0.5,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "hatch.linewidth": 0.6,
    "savefig.dpi": DPI,
    "svg.fonttype": "none",
    "svg.hashsalt": "robrank",
    "pdf.fonttype": 42,
}

#: metadata that would differ between two saves of the same figure, removed or fixed
METADATA: dict[str, dict[str, Any]] = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": "robrank"},
    "pdf": {"CreationDate": None, "ModDate": None, "Creator": "robrank", "Producer": None},
}


def _matplotlib() -> Any:
    try:
        import matplotlib  # optional: matplotlib (plot extra)
    except ImportError:
        raise RobrankError("figures need matplotlib; install it with: pip install 'robrank[plot]'") from None
    return matplotlib


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """The paper rcParams for a block (figures read them when artists are made and when saved)."""
    with _matplotlib().rc_context(STYLE):
        yield


def blank_figure(width: float, height: float) -> Figure:
    """An empty Figure (constrained layout) on the Agg canvas: no pyplot, no GUI backend."""
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # optional: matplotlib (plot extra)
    from matplotlib.figure import Figure  # optional: matplotlib (plot extra)

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def new_figure(width: float, height: float, **subplots: Any) -> tuple[Figure, Any]:
    """A Figure and its axes, like ``plt.subplots`` minus pyplot."""
    fig = blank_figure(width, height)
    axes = fig.subplots(squeeze=False, **subplots) if subplots.get("nrows", 1) * subplots.get("ncols", 1) > 1 else fig.subplots()
    return fig, axes


def figure_format(path: str | Path) -> str:
    """The format a file name asks for: png, svg or pdf (anything else is a one-line error)."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise RobrankError(f"cannot tell the figure format of {str(path)!r}; end the file name in {', '.join(SUFFIXES)}")
    return SUFFIXES[suffix]


def render(fig: Figure, fmt: str = "png") -> bytes:
    """The figure's file content in ``fmt`` (png, svg, pdf), deterministic for the same figure."""
    if fmt not in METADATA:
        raise RobrankError(f"unknown figure format {fmt!r}; use {', '.join(METADATA)}")
    buffer = io.BytesIO()
    with paper_style():
        fig.savefig(buffer, format=fmt, dpi=DPI, metadata=METADATA[fmt])
    return buffer.getvalue()


def save(fig: Figure, path: str | Path) -> Path:
    """Write the figure atomically to ``path``; the suffix picks the format."""
    from ..io import atomic_open  # lazy: only when a figure is saved

    path = Path(path)
    data = render(fig, figure_format(path))
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return path


def inline_svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element to paste into HTML (no XML prolog, DOCTYPE or metadata)."""
    text = render(fig, "svg").decode("utf-8")
    text = text[text.index("<svg") :]
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)


#: inches between the legend and the figure's edges; the legend's rows are sized from its measured height
LEGEND_PAD = 0.08


def legend_below(fig: Figure, handles: Sequence[Any], labels: Sequence[str], *, max_cols: int = 3, body_height: float,
                 handlelength: float = 1.2) -> Any:
    """A legend under the axes that fits the figure's width whatever the labels, and a figure tall enough for it.

    Labels are wrapped (at spaces, hyphens and, for one long name, anywhere) to the width a
    column has; when the widest column still does not fit, fewer columns are tried. The
    figure's height becomes ``body_height`` (the axes) plus the legend's measured height,
    so the plot area keeps its size however long the labels are.
    """
    width = fig.get_size_inches()[0]
    renderer = fig.canvas.get_renderer()
    room = fig.bbox.width - 2 * LEGEND_PAD * fig.dpi
    longest = max((len(str(label)) for label in labels), default=1)
    legend, box = None, None
    for ncols in range(max(1, min(max_cols, len(labels))), 0, -1):
        # the widest wrapping that fits this many columns; fewer columns when that would cut names short
        for chars in range(longest, MIN_WRAP - 1, -4) if longest > MIN_WRAP else (longest,):
            if legend is not None:
                legend.remove()
            wrapped = [textwrap.fill(str(label), chars, break_on_hyphens=True, break_long_words=True) for label in labels]
            legend = fig.legend(handles, wrapped, loc="outside lower center", ncols=ncols, handlelength=handlelength)
            box = legend.get_window_extent(renderer)
            if box.width <= room:
                break
        if box.width <= room and (chars >= min(longest, GOOD_WRAP) or ncols == 1):
            break
    assert legend is not None and box is not None
    fig.set_size_inches(width, body_height + box.height / fig.dpi + 2 * LEGEND_PAD)
    return legend


#: the shortest line a legend label is wrapped to, and the line length below which fewer columns are preferred
MIN_WRAP = 12
GOOD_WRAP = 28


def colors(n: int) -> list[Any]:
    """``n`` distinguishable colours, the same for the same ``n`` (tab10, then tab20)."""
    import matplotlib as mpl  # optional: matplotlib (plot extra)

    cmap = mpl.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


__all__ = ["COLUMN_WIDTH", "PAGE_WIDTH", "DPI", "SUFFIXES", "STYLE", "paper_style", "blank_figure", "new_figure", "figure_format", "render", "save", "inline_svg", "colors", "legend_below"]
