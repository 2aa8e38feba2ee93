"""Training curves: R@1, mAP, NMI and the training loss per epoch from runs' ``metrics.jsonl``.

Each validation appends one line to ``metrics.jsonl``; a resumed run can validate an epoch
twice, and the later line wins (it describes the checkpoint that training continued from).
Epochs without a value (``--validate-every 2``, an older file without NMI) are gaps, not
zeros.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RobrankError
from .figure import PAGE_WIDTH, colors, legend_below, new_figure, paper_style

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: (metrics.jsonl key, panel title, factor): retrieval scores in percent, the loss as it is
PANELS: tuple[tuple[str, str, float], ...] = (
    ("R@1", "R@1 (%)", 100.0),
    ("mAP", "mAP (%)", 100.0),
    ("NMI", "NMI (%)", 100.0),
    ("train_loss", "training loss", 1.0),
)


@dataclass
class TrainingRun:
    """One run's curves: ``series[key] = (epochs, values)`` for every key of :data:`PANELS`."""

    label: str
    series: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)


def _metrics_file(path: Path) -> Path:
    from ..training.rundir import METRICS_FILE  # lazy: keeps this module torch-free

    return path / METRICS_FILE if path.is_dir() else path


def load_training(path: str | Path, label: str | None = None) -> TrainingRun:
    """Read a run directory's (or a ``metrics.jsonl`` file's) per-epoch metrics."""
    from ..io import read_jsonl  # lazy: only when a run's log is read

    path = Path(path)
    metrics = _metrics_file(path)
    if not metrics.is_file():
        raise RobrankError(f"{str(path)!r} has no {metrics.name}; pass a run directory written by robrank train or robrank run")
    try:
        records = read_jsonl(metrics)
    except ValueError as exc:
        raise RobrankError(f"{str(metrics)!r} is not JSON lines ({exc}); is the file truncated?") from None
    by_epoch: dict[int, dict[str, Any]] = {}
    for record in records:
        if isinstance(record, dict) and isinstance(record.get("epoch"), int):
            by_epoch[record["epoch"]] = record
    if not by_epoch:
        raise RobrankError(f"{str(metrics)!r} holds no validation yet; plot it after the first epoch")
    run = TrainingRun(label=label or (path.name if path.is_dir() else path.parent.name))
    for key, _title, factor in PANELS:
        epochs, values = [], []
        for epoch in sorted(by_epoch):
            value = by_epoch[epoch].get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                epochs.append(epoch)
                values.append(factor * float(value))
        run.series[key] = (epochs, values)
    return run


def training_figure(runs: Sequence[TrainingRun], *, width: float = PAGE_WIDTH, height: float = 1.9) -> Figure:
    """Four panels (R@1, mAP, NMI, loss) over epochs, one line per run."""
    if not runs:
        raise RobrankError("no runs to plot; pass one or more run directories")
    palette = colors(len(runs))
    with paper_style():
        fig, axes = new_figure(width, height, nrows=1, ncols=len(PANELS))
        for ax, (key, title, _factor) in zip(axes.flat, PANELS):
            for i, run in enumerate(runs):
                epochs, values = run.series.get(key, ([], []))
                if epochs:
                    (line,) = ax.plot(epochs, values, marker="o", color=palette[i], label=run.label)
                    line.set_gid(f"training-{key}-{i}")
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.xaxis.get_major_locator().set_params(integer=True)
            if key == "train_loss" and _spans_decades(runs, key):
                ax.set_yscale("log")
        from matplotlib.lines import Line2D  # optional: matplotlib (plot extra)

        legend_below(fig, [Line2D([], [], color=palette[i], marker="o") for i in range(len(runs))], [run.label for run in runs],
                     max_cols=4, body_height=height, handlelength=2.0)
    return fig


def _spans_decades(runs: Sequence[TrainingRun], key: str) -> bool:
    """A loss that falls by more than 20x reads better on a log axis (it must stay positive)."""
    values = [v for run in runs for v in run.series.get(key, ([], []))[1]]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 20


def plot_training(runs: Sequence[str | Path], output: str | Path, labels: Sequence[str] | None = None) -> Path:
    """``robrank plot training``: read runs' metrics.jsonl and save the figure to ``output``."""
    from .figure import save  # lazy: only when the figure is saved

    labels = list(labels or [])
    loaded = [load_training(run, labels[i] if i < len(labels) else None) for i, run in enumerate(runs)]
    return save(training_figure(loaded), output)


__all__ = ["PANELS", "TrainingRun", "load_training", "training_figure", "plot_training"]
