"""Figures of robrank's results: ERS bars, robustness curves, training curves, retrieval pictures.

Everything here needs matplotlib (the ``plot`` extra), imported only when a figure is made.
Each figure has a function returning the data it draws (``ers_series``, ``curve_panels``,
``load_training``), a function building the :class:`matplotlib.figure.Figure`
(``ers_figure``, ...), and a ``plot_*`` function that loads files and saves the figure,
which is what ``robrank plot`` calls.
"""
from __future__ import annotations

from .figure import COLUMN_WIDTH, DPI, PAGE_WIDTH, SUFFIXES, figure_format, inline_svg, render, save

__all__ = ["COLUMN_WIDTH", "DPI", "PAGE_WIDTH", "SUFFIXES", "figure_format", "inline_svg", "render", "save"]
