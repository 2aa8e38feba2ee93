"""``robrank train``: train an embedding model into a run directory."""
from __future__ import annotations

from typing import Any
import contextlib

import click

from .options import apply_triple, echo_json, output_group, training_options, training_settings
from ..plugins import get_registry
from ..runtime import RuntimeOptions


@click.command("train")
@training_options
@click.option("--devices", type=click.IntRange(min=1), default=None,
              help="Processes to train with (DDP; one per GPU, or gloo on CPU). batch-size is per process.")
@output_group
def train_command(triple: str | None, resume: bool, devices: int | None, as_json: bool, quiet: bool, no_progress: bool,
                  runtime: RuntimeOptions, **options: Any) -> None:
    """Train an embedding model on SPC-2 pair batches and print its retrieval metrics.

    \b
    Examples:
      robrank train -C mnist:c2f2:ptripletN
      robrank train -C fashion:rc2f2p:ptripletN          # ACT adversarial training (suffix p)
      robrank train --dataset cub --backbone resnet18 --loss ptripletN --devices 2
      robrank train --resume --run-dir runs/mnist-c2f2-ptripletN-20250101-120000
    """
    from ..metrics import format_metrics, in_percent  # lazy: keeps robrank --help torch-free
    from ..training.plan import plan_training  # lazy: keeps robrank --help torch-free
    from ..training import train  # lazy: keeps robrank --help torch-free
    from ..training.config import TrainConfig  # lazy: keeps robrank --help torch-free
    from ..training.distributed import from_env  # lazy: keeps robrank --help torch-free
    from ..training.rundir import locked  # lazy: keeps robrank --help torch-free

    registry = get_registry()
    given = apply_triple(triple, training_settings(options, runtime), registry)
    if not all(given.get(k) for k in ("dataset", "backbone", "loss")):
        missing = [k for k in ("dataset", "backbone", "loss") if not given.get(k)]
        if not (resume and given.get("run_dir") and len(missing) == 3):
            if resume and len(missing) == 3:
                raise click.UsageError("--resume needs -C/--dataset... to find the newest run, or --run-dir DIR")
            raise click.UsageError(f"missing --{', --'.join(missing)} (or give -C DATASET:MODEL:LOSS; robrank list shows the names)")
        config = TrainConfig(dataset="", backbone="", loss="", run_dir=given["run_dir"])  # identity comes from the run
    else:
        config = TrainConfig.from_dict(given)
    plan = plan_training(config, resume=resume, registry=registry, given=given)
    progress = not (no_progress or quiet or as_json)
    with locked(plan.run_dir, "robrank train") if from_env().is_main else _nothing():
        result = train(plan, progress=progress, devices=devices)  # the plan carries its registry
    if not from_env().is_main:  # under torchrun the summary comes once, from global rank 0
        return
    if as_json:
        echo_json({"run_dir": str(result.run_dir), "epochs": result.epochs, "steps": result.steps,
                   "seconds": round(result.seconds, 3), "metrics": in_percent(result.metrics)})
        return
    click.echo(f"run: {result.run_dir}")
    click.echo(f"trained {result.epochs} epoch(s), {result.steps} step(s) in {result.seconds:.1f} s")
    if result.metrics:
        from ..metrics import TIES_KEY, tie_note  # lazy: keeps robrank --help torch-free

        click.echo(format_metrics(result.metrics))
        note = tie_note(result.metrics.get(TIES_KEY))
        if note:
            click.echo(note)


def _nothing() -> Any:
    return contextlib.nullcontext()
