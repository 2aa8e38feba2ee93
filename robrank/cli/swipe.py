"""``robrank swipe``: run a profile of attacks against one model into a resumable JSON file."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING
import contextlib

import click

from ..runtime import RuntimeOptions
from .external_model import external_model_options
from .options import (
    data_root_option,
    echo_json,
    force_profile_option,
    max_batches_option,
    max_queries_option,
    output_group,
    runtime_options,
    semantics_option,
)
from ..plugins import get_registry
from ..runtime import resolve_device
from ..swipe.report import report
from ..swipe.schema import load_results, partial_note

if TYPE_CHECKING:
    from ..plugins import Registry


def _dataset_profile(run_or_ckpt: object, registry: Registry) -> str:
    """The swipe profile the dataset record names (``-p`` omitted)."""
    from ..data.loading import dataset_record  # lazy: keeps robrank --help torch-free
    from ..models.checkpoint import read_checkpoint  # lazy: keeps robrank --help torch-free

    dataset = getattr(run_or_ckpt, "dataset", None)
    if dataset is None:
        dataset = read_checkpoint(str(run_or_ckpt))[1]["config"]["dataset"]
    return dataset_record(str(dataset), registry=registry).profile


@click.command("swipe")
@click.argument("run_or_ckpt", metavar="[RUN_OR_CKPT]", type=click.Path(exists=True, path_type=str), required=False)
@external_model_options
@click.option("-p", "--profile", default=None, help="Attack profile (robrank list profiles): rob28, rob224, pami28, ... [default: the dataset's own].")
@click.option("--output", type=click.Path(dir_okay=False, path_type=str), default=None, help="Results file [default: RUN/swipe-PROFILE.json, CKPT.swipe-PROFILE.json, or beside --model's file or first weights file].")
@runtime_options("Queries per attack batch (a speed knob) [default: automatic, fitted to the device].", workers=True, speed="attack")
@max_batches_option
@max_queries_option
@click.option("--seed", type=int, default=0, help="Seed of every attack's random selection [default: 0].")
@semantics_option
@data_root_option
@click.option("--restart", is_flag=True, help="Discard an existing results file instead of continuing it.")
@click.option("--redo", multiple=True, metavar="ATTACK", help="Recompute this attack (a type such as ES, or a full spec) in an existing file, keeping the others; repeatable.")
@click.option("--devices", type=click.IntRange(min=1), default=None, help="Shard the queries over N processes (one per GPU; gloo on a CPU). Under torchrun the ranks come from the environment.")
@force_profile_option
@output_group
def swipe_command(
    run_or_ckpt: object,
    profile: str | None,
    output: str | None,
    max_batches: int | None,
    max_queries: int | None,
    seed: int,
    semantics: str | None,
    data_root: str | None,
    restart: bool,
    redo: tuple[str, ...],
    devices: int | None,
    runtime: RuntimeOptions,
    force: bool,
    as_json: bool,
    quiet: bool,
    no_progress: bool,
) -> None:
    """Attack the model at RUN_OR_CKPT (a run directory or a checkpoint), or --model, with every attack of a profile.

    Results are saved after each attack; rerunning the same command after a crash or Ctrl-C
    skips the attacks already done. ERS profiles print the report table at the end.
    """
    from ..training.plan import DEFAULT_SEMANTICS, SwipePlan  # lazy: keeps robrank --help torch-free
    from ..swipe.distributed import swipe_devices, swipe_ranked  # lazy: keeps robrank --help torch-free
    from ..swipe.runner import resolve_profile  # lazy: keeps robrank --help torch-free
    from ..training.distributed import from_env  # lazy: keeps robrank --help torch-free
    from ..training.rundir import locked  # lazy: keeps robrank --help torch-free

    resolve_device(runtime.device)  # --device cuda without a GPU: one line, before anything loads
    registry = get_registry()
    record = resolve_profile(profile or _dataset_profile(run_or_ckpt, registry), registry)  # an unknown name fails here, before the model loads
    info = from_env()
    plan = SwipePlan(profile=record.name, batch_size=runtime.batch_size, max_batches=max_batches, max_queries=max_queries,
                     semantics=semantics or DEFAULT_SEMANTICS, seed=seed, device=runtime.device)
    kwargs = dict(
        output=output,
        **plan.runner_kwargs(),
        data_root=data_root,
        progress=not (no_progress or quiet or as_json),
        restart=restart,
        redo=redo,
        **runtime.speed,
        num_workers=runtime.num_workers,
        force=force,
    )
    lock_dir = _run_dir_of(run_or_ckpt) if info.is_main else None
    # Ctrl-C: robrank.cli turns it into one line with exit code 130 (the attacks done are saved)
    with locked(lock_dir, "robrank swipe") if lock_dir is not None else _nothing():
        if devices is not None and devices > 1 and not info.enabled:
            path = swipe_devices(run_or_ckpt, record.name, devices, registry=registry, **kwargs)
        else:  # one process, or one rank of torchrun
            path = swipe_ranked(run_or_ckpt, record.name, registry=registry, info=info, **kwargs)
    if info.rank != 0:
        return
    if as_json:
        echo_json({"results": str(path), "swipe": json.loads(Path(path).read_text())})
        return
    click.echo(f"results: {path}")
    if record.score is not None:
        click.echo(report([path], "table", registry=registry), nl=False)
    else:
        note = partial_note(load_results(path, registry))
        if note:
            click.echo(f"partial result: {note}; not comparable with a full swipe")


def _run_dir_of(run_or_ckpt: object) -> Path | None:
    """The run directory a swipe works in (a run directory, or the one holding the checkpoint; none for --model)."""
    from ..models.checkpoint import run_dir_of  # lazy: keeps robrank --help torch-free
    from ..training.rundir import CONFIG_FILE  # lazy: keeps robrank --help torch-free

    if not isinstance(run_or_ckpt, (str, Path)):
        return None
    given = Path(run_or_ckpt)
    if given.is_dir():
        return given if (given / CONFIG_FILE).is_file() else None
    return run_dir_of(given)


def _nothing():
    return contextlib.nullcontext()
