"""``robrank sweep``: swipe a grid of runs x profiles x seeds, one resumable cell each, on a pluggable executor."""
from __future__ import annotations

import sys

import click


@click.command("sweep")
@click.argument("runs", nargs=-1, metavar="RUN_OR_CKPT...", type=click.Path(exists=True, path_type=str))
@click.option("-p", "--profile", "profiles", multiple=True, help="Attack profile (robrank list profiles); repeatable: one cell per run and profile.")
@click.option("--seed", "seeds", type=int, multiple=True, help="Seed of the attacks' random selection; repeatable: one cell per seed [0].")
@click.option("-b", "--batch-size", "batch_size", type=click.IntRange(min=1), default=None, help="Queries per attack batch, as in robrank swipe [automatic].")
@click.option("-m", "--max-batches", "max_batches", type=click.IntRange(min=1), default=None, help="Stop each attack after this many batches (quick checks).")
@click.option("--semantics", type=click.Choice(["reference", "fixed"]), default=None, help="Attack semantics, as in robrank swipe [reference].")
@click.option("--device", default=None, help="torch device of each cell [cuda if the cell sees a GPU, else cpu].")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=str), default=None, help="Dataset root [default: $ROBRANK_DATA].")
@click.option("--grid", "grid_file", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None,
              help="TOML file with runs, profiles, seeds and a [swipe] table; command-line values are added (settings override).")
@click.option("-d", "--dir", "sweep_dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Sweep directory: manifest, one folder per cell, logs, report. Rerun with the same --dir to continue.")
@click.option("--executor", default=None, help="Where cells run (robrank list executors) [local].")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Cells at once [local: one per GPU, or half the cores up to 4; slurm: no limit].")
@click.option("--gpus-per-job", type=click.IntRange(min=0), default=None, help="GPUs per cell; above 1 the cell's swipe is sharded over them [1 on a GPU machine].")
@click.option("--partition", default=None, help="Scheduler partition (slurm).")
@click.option("--time-limit", type=click.IntRange(min=1), default=None, help="Minutes per job; a cell that runs out is requeued and continues (slurm) [1440].")
@click.option("-X", "--executor-option", "executor_options", multiple=True, metavar="KEY=VALUE", help="An executor's own option, e.g. -X account=lab -X cluster=local; repeatable.")
@click.option("--no-wait", is_flag=True, help="Submit and return (slurm); rerun the same command or --status later.")
@click.option("--status", "status_dir", type=click.Path(file_okay=False, path_type=str), default=None, metavar="DIR",
              help="Show the cells of the sweep in DIR (done, queued, running, failed with their errors) and exit.")
def sweep_command(runs: tuple[str, ...], profiles: tuple[str, ...], seeds: tuple[int, ...], batch_size: int | None,
                  max_batches: int | None, semantics: str | None, device: str | None, data_root: str | None, grid_file: str | None,
                  sweep_dir: str | None, executor: str | None, jobs: int | None, gpus_per_job: int | None, partition: str | None,
                  time_limit: int | None, executor_options: tuple[str, ...], no_wait: bool, status_dir: str | None) -> None:
    """Swipe every RUN_OR_CKPT with every profile (and seed): one resumable cell each, then one combined report.

    \b
    Examples:
      robrank sweep runs/a runs/b -p rob28 -p pami28 --dir sweeps/mnist
      robrank sweep --grid grid.toml --executor slurm --partition gpu --gpus-per-job 1 --dir sweeps/cub
      robrank sweep --dir sweeps/mnist        # continue: skips done cells, restarts failed ones
      robrank sweep --status sweeps/mnist
    """
    from ..sweep import ExecutorSettings, Grid, build_executor, format_status, load_grid, parse_options, run_sweep, sweep_states

    if status_dir is not None:
        click.echo(format_status(sweep_states(status_dir)), nl=False)
        return
    if sweep_dir is None:
        raise click.UsageError("give --dir SWEEP_DIR (where the cells and the report go), or --status DIR")
    settings = {"batch_size": batch_size, "max_batches": max_batches, "semantics": semantics, "device": device, "data_root": data_root}
    grid = Grid(runs=list(runs), profiles=list(profiles), seeds=list(seeds), settings=settings)
    if grid_file is not None:
        grid = load_grid(grid_file).merged(grid)
    from pathlib import Path

    built = build_executor(executor, ExecutorSettings(sweep_dir=Path(sweep_dir), jobs=jobs, partition=partition, gpus_per_job=gpus_per_job,
                                                      time_limit=time_limit, wait=not no_wait, options=parse_options(executor_options)))
    try:
        outcome = run_sweep(sweep_dir, grid, built, gpus_per_job=gpus_per_job)
    except KeyboardInterrupt:
        click.echo("robrank sweep: interrupted; finished attacks are saved, rerun the same command to continue", err=True)
        sys.exit(130)
    if not outcome.ran:
        click.echo("robrank sweep: every cell is finished or running elsewhere; nothing to run", err=True)
    click.echo(format_status(outcome.states), nl=False)
    if outcome.report is not None:
        if outcome.report:
            click.echo("")
            click.echo(outcome.report, nl=False)
        click.echo(f"report: {Path(sweep_dir) / 'report.txt'}")
    if outcome.failed:
        sys.exit(1)
