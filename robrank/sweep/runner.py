"""``robrank sweep``: record the grid, hand the unfinished cells to an executor, report the finished ones.

Rerunning the same sweep is always safe: finished cells are skipped, cells whose process is
alive (their lock is held) are left alone, and failed, killed or never-started cells run
(again), each continuing its own results file. The combined report is built from the
finished cells only, with the code of ``robrank report``; unfinished cells are listed with
their state instead of being shown as if they were results.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io import write_text
from ..plugins import Registry
from .cell import CellJob
from .grid import Cell, Grid, SwipeSettings, check_targets
from .state import CellState, cell_dir, cell_state, read_manifest, sweep_states, update_manifest
from ..swipe.report import FORMATS, format_report, load_summaries

#: report files written into the sweep directory: name -> robrank report format
REPORTS: dict[str, str] = {"report.txt": "table", "report.md": "markdown", "report.html": "html"}


@dataclass
class SweepOutcome:
    """What a sweep run left: every cell's state, which ran now, and the report (if any cell is done)."""

    states: list[CellState]
    ran: list[str]
    report: str | None

    @property
    def failed(self) -> list[CellState]:
        return [s for s in self.states if s.state == "failed"]


def prepare(sweep_dir: str | Path, grid: Grid, registry: Registry) -> tuple[list[Cell], SwipeSettings]:
    """The cells to consider (the grid's, or the whole recorded sweep if the grid is empty) and the settings."""
    sweep_dir = Path(sweep_dir)
    cells = grid.cells()
    if (grid.runs or grid.models) and not grid.profiles:
        raise ConfigError("give at least one -p PROFILE (robrank list profiles)")
    if grid.profiles and not (grid.runs or grid.models):
        raise ConfigError("give at least one RUN (a run directory or checkpoint) or --model SPEC to sweep")
    if not cells:  # robrank sweep --dir DIR: continue the recorded sweep
        manifest = read_manifest(sweep_dir)
        settings = SwipeSettings.from_dict({**manifest.settings.as_dict(), **{k: v for k, v in grid.settings.items() if v is not None}})
        return manifest.cells, settings
    for profile in {c.profile for c in cells}:
        registry.get("profiles", profile)  # an unknown name fails before anything is written
    check_targets(cells)
    settings = SwipeSettings.from_dict({k: v for k, v in grid.settings.items() if v is not None})
    if settings.semantics not in ("reference", "fixed"):
        raise ConfigError(f"semantics must be reference or fixed, got {settings.semantics!r}")
    return cells, settings


def run_sweep(sweep_dir: str | Path, grid: Grid, executor: Any, *, registry: Registry, gpus_per_job: int | None = None) -> SweepOutcome:
    """Record ``grid`` in ``sweep_dir``, run its unfinished cells with ``executor``, report.

    ``gpus_per_job`` above 1 shards each cell's swipe over that many processes (its GPUs).
    """
    sweep_dir = Path(sweep_dir)
    cells, settings = prepare(sweep_dir, grid, registry)
    manifest = update_manifest(sweep_dir, cells, settings)
    wanted = {c.id for c in cells}
    todo = [s.cell for s in (cell_state(sweep_dir, c) for c in manifest.cells if c.id in wanted) if s.state not in ("done", "running")]
    for cell in todo:
        cell_dir(sweep_dir, cell.id).mkdir(parents=True, exist_ok=True)
    if todo:
        devices = gpus_per_job if gpus_per_job is not None and gpus_per_job > 1 else None  # a cell's swipe over its GPUs
        executor.run([CellJob(str(sweep_dir), c.id, devices) for c in todo])
    states = sweep_states(sweep_dir)
    return SweepOutcome(states=states, ran=[c.id for c in todo], report=write_reports(sweep_dir, registry, states))


def write_reports(sweep_dir: str | Path, registry: Registry, states: Sequence[CellState] | None = None) -> str | None:
    """Write the combined report of the finished cells (:data:`REPORTS`); returns its ERS tables, None if no cell is done."""
    sweep_dir = Path(sweep_dir)
    states = sweep_states(sweep_dir) if states is None else states
    done = [s for s in states if s.state == "done"]
    if not done:
        return None
    summaries = load_summaries([cell_dir(sweep_dir, s.cell.id) / s.results for s in done], registry)
    several_seeds = len({s.cell.seed for s in done}) > 1
    labels = [f"{Path(s.cell.target).name}/{s.cell.profile}" + (f" seed {s.cell.seed}" if several_seeds else "") for s in done]
    if len(set(labels)) < len(labels):  # two runs with the same folder name: the cell ids tell them apart
        labels = [s.cell.id for s in done]
    for summary, label in zip(summaries, labels):
        summary.label = label + ("" if summary.payload["semantics"] == "reference" else f" ({summary.payload['semantics']})")
    for name, fmt in REPORTS.items():
        if fmt in FORMATS:  # the HTML page with figures where this version of robrank report has it
            write_text(sweep_dir / name, format_report(summaries, fmt))
    # on the console: the ERS tables (one row per cell); attack-by-attack profiles stay in the files
    scored = [s for s in summaries if s.ers_profile]
    return format_report(scored, "table") if scored else ""


__all__ = ["run_sweep", "write_reports", "prepare", "SweepOutcome", "REPORTS"]
