"""``robrank sweep``: swipe a grid of runs x profiles x seeds, one resumable cell each, on a pluggable executor."""
from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import Any

import click

from ..runtime import RuntimeOptions
from .external_model import resolve_target
from .options import (data_root_option, echo_json, external_model_group, json_option, max_batches_option, max_queries_option,
                      quiet_option, runtime_options, semantics_option, with_default)
from ..plugins import get_registry


@click.command("sweep")
@click.argument("runs", nargs=-1, metavar="RUN_OR_CKPT...", type=click.Path(exists=True, path_type=str))
@click.option("-p", "--profile", "profiles", multiple=True, help="Attack profile (robrank list profiles); repeatable: one cell per run and profile.")
@click.option("--seed", "seeds", type=int, multiple=True, help=with_default("Seed of the attacks' random selection; repeatable: one cell per seed.", 0))
@runtime_options(with_default("Queries per attack batch, as in robrank swipe (a speed knob).", "automatic, fitted to the device"),
                 speed="attack")
@max_batches_option
@max_queries_option
@semantics_option
@data_root_option
@click.option("--grid", "grid_file", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None,
              help="TOML file with runs, profiles, seeds and a [swipe] table; command-line values are added (settings override).")
@click.option("-d", "--dir", "sweep_dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Sweep directory: manifest, one folder per cell, logs, report. Rerun with the same --dir to continue.")
@click.option("--executor", default=None, help=with_default("Where cells run (robrank list executors).", "the default executor (local)"))
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help=with_default("Cells at once.", "local: one per GPU, or half the cores up to 4; slurm: no limit"))
@click.option("--gpus-per-job", type=click.IntRange(min=0), default=None, help=with_default("GPUs per cell; above 1 the cell's swipe is sharded over them.", "1 where there are GPUs"))
@click.option("--partition", default=None, help="Scheduler partition (slurm).")
@click.option("--time-limit", type=click.IntRange(min=1), default=None, help=with_default("Minutes per job; a cell that runs out is requeued and continues (slurm).", 1440))
@click.option("-X", "--executor-option", "executor_options", multiple=True, metavar="KEY=VALUE", help="An executor's own option, e.g. -X account=lab -X cluster=local; repeatable.")
@click.option("--no-wait", is_flag=True, help="Submit and return (slurm); rerun the same command or --status later.")
@click.option("--status", "status_dir", type=click.Path(file_okay=False, path_type=str), default=None, metavar="DIR",
              help="Show the cells of the sweep in DIR (done, queued, running, failed with their errors) and exit.")
@external_model_group
@json_option
@quiet_option
def sweep_command(runs: tuple[str, ...], profiles: tuple[str, ...], seeds: tuple[int, ...], runtime: RuntimeOptions,
                  max_batches: int | None, max_queries: int | None, semantics: str | None, data_root: str | None, grid_file: str | None,
                  sweep_dir: str | None, executor: str | None, jobs: int | None, gpus_per_job: int | None, partition: str | None,
                  time_limit: int | None, executor_options: tuple[str, ...], no_wait: bool, status_dir: str | None, as_json: bool,
                  quiet: bool, **model_options: Any) -> None:
    """Swipe every RUN_OR_CKPT (and --model) with every profile (and seed): one resumable cell each, then one combined report.

    \b
    Examples:
      robrank sweep runs/a runs/b -p rob28 -p pami28 --dir sweeps/mnist
      robrank sweep runs/a --model net.py:build --weights w.pt --metric N --dataset mnist -p rob28 --dir sweeps/m
      robrank sweep --grid grid.toml --executor slurm --partition gpu --gpus-per-job 1 --dir sweeps/cub
      robrank sweep --dir sweeps/mnist        # continue: skips done cells, restarts failed ones
      robrank sweep --status sweeps/mnist
    """
    # lazy: keeps robrank --help fast
    from ..sweep import ExecutorSettings, Grid, build_executor, format_status, load_grid, parse_options, run_sweep, sweep_states

    if status_dir is not None:
        states = sweep_states(status_dir)
        if as_json:
            echo_json([_state_json(s) for s in states])
        else:
            click.echo(format_status(states), nl=False)
        return
    if sweep_dir is None:
        raise click.UsageError("give --dir SWEEP_DIR (where the cells and the report go), or --status DIR")
    settings = {"batch_size": runtime.batch_size, "max_batches": max_batches, "max_queries": max_queries, "semantics": semantics,
                "device": runtime.device, "data_root": data_root, **{k: v or None for k, v in runtime.speed.items()}}  # None: not given
    grid = Grid(runs=list(runs), profiles=list(profiles), seeds=list(seeds), settings=settings)
    if model_options.get("model") is not None:  # a model trained elsewhere is one more row of the grid
        from ..sweep.grid import model_target  # lazy: keeps robrank --help fast

        grid.models.append(model_target(resolve_target(None, **model_options)))
    registry = get_registry()
    if grid_file is not None:
        grid = load_grid(grid_file, registry).merged(grid)
    built = build_executor(executor, ExecutorSettings(sweep_dir=Path(sweep_dir), jobs=jobs, partition=partition, gpus_per_job=gpus_per_job,
                                                      time_limit=time_limit, wait=not no_wait, options=parse_options(executor_options)),
                           registry)
    try:
        if quiet or as_json:  # the executors' per-cell lines go to stderr; -q/--json keep only the result
            with contextlib.redirect_stderr(io.StringIO()):
                outcome = run_sweep(sweep_dir, grid, built, registry=registry, gpus_per_job=gpus_per_job)
        else:
            outcome = run_sweep(sweep_dir, grid, built, registry=registry, gpus_per_job=gpus_per_job)
    except KeyboardInterrupt:
        click.echo("robrank sweep: interrupted; finished attacks are saved, rerun the same command to continue", err=True)
        sys.exit(130)
    if as_json:
        echo_json({"sweep_dir": sweep_dir, "ran": outcome.ran, "cells": [_state_json(s) for s in outcome.states],
                   "report": str(Path(sweep_dir) / "report.txt") if outcome.report is not None else None})
        sys.exit(1 if outcome.failed else 0)
    if not outcome.ran and not quiet:
        click.echo("robrank sweep: every cell is finished or running elsewhere; nothing to run", err=True)
    click.echo(format_status(outcome.states), nl=False)
    if outcome.report is not None:
        if outcome.report:
            click.echo("")
            click.echo(outcome.report, nl=False)
        click.echo(f"report: {Path(sweep_dir) / 'report.txt'}")
    if outcome.failed:
        sys.exit(1)


def _state_json(state: Any) -> dict[str, Any]:
    """One cell for ``--json``: its spec, state, progress, error and status record."""
    return {**state.cell.as_dict(), "state": state.state, "attacks_done": state.attacks_done,
            "attacks_planned": state.attacks_planned, "error": state.error, "status": state.status}
