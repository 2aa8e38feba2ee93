"""``robrank attack RUN_OR_CKPT -A SPEC``: one ranking attack against a trained model.

The reference's ``bin/advrank.py -C ckpt -A attack``: it prints the clean (Original), the
adversarial and the difference summaries. The run's own config says which dataset and
metric to use, so nothing is parsed back out of the checkpoint path.

``--surrogate RUN`` makes it a transfer attack (the reference's ``-T``): the attack is
optimised on the surrogate run's model and scored on RUN_OR_CKPT's.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError
from ..runtime import RuntimeOptions
from ..semantics import REFERENCE, SEMANTICS
from .external_model import external_model_options
from .options import (
    data_root_option,
    json_option,
    max_batches_option,
    max_queries_option,
    quiet_option,
    runtime_options,
)
from ..plugins import get_registry
from ..runtime import device_name, resolve_device
from ..swipe.schema import check_metric, registered_bounds

if TYPE_CHECKING:
    from ..plugins import Registry


def _print_summary(title: str, summary: dict[str, float]) -> None:
    click.secho(f"{title}:", bold=True)
    width = max((len(k) for k in summary), default=0)
    for key, value in summary.items():
        click.echo(f"  {key:<{width}}  {value: .6f}")


@click.command("attack")
@click.argument("run_or_ckpt", metavar="[RUN_OR_CKPT]", type=click.Path(path_type=str), required=False)
@external_model_options
@click.option("-A", "--attack", "spec", required=True, help="Attack spec TYPE:key=val:..., e.g. CA:pm=+:W=1:eps=0.30196:alpha=0.011764:pgditer=32.")
@max_batches_option
@max_queries_option
@runtime_options("Queries per batch [default: automatic, fitted to the device].", speed="attack")
@click.option("--seed", type=int, default=0, help="Seed of the target selection [default: 0].")
@click.option("--semantics", type=click.Choice(SEMANTICS), default=REFERENCE, help="reference: reproduce the reference quirks; fixed: corrected behaviour (docs/attacks.md) [default: reference].")
@click.option("--random-start", is_flag=True, help="Start PGD from a uniform random point in the eps-ball.")
@data_root_option
@click.option("--save-adversarial", "save_adversarial", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Write the perturbed images to DIR: adversarial.pt (images + dataset indices) and a few PNGs; a DIR holding earlier ones is refused.")
@click.option("--surrogate", type=click.Path(path_type=str), default=None, help="Transfer attack: optimise on this run (or checkpoint) and score on RUN_OR_CKPT; it must have been trained on the same dataset.")
@json_option
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@quiet_option
def attack_command(
    run_or_ckpt: object,
    spec: str,
    max_batches: int | None,
    max_queries: int | None,
    seed: int,
    semantics: str,
    random_start: bool,
    data_root: str | None,
    save_adversarial: str | None,
    surrogate: str | None,
    as_json: bool,
    no_progress: bool,
    quiet: bool,
    runtime: RuntimeOptions,
) -> None:
    """Attack the model of a run directory or checkpoint (or --model) with one attack SPEC."""
    from ..attacks import AttackOptions, build_attack, parse_spec, run_attack  # lazy: keeps robrank --help torch-free
    from ..attacks.adversarial import AdversarialCollector, prepare_folder  # lazy: keeps robrank --help torch-free
    from ..attacks.reach import short_steps  # lazy: keeps robrank --help torch-free
    from ..data.loading import load_split  # lazy: keeps robrank --help torch-free

    registry = get_registry()
    parsed = parse_spec(spec, registry)  # fail on a bad spec before loading anything
    if save_adversarial:  # an earlier attack's saved images are never replaced; refused before any work
        prepare_folder(save_adversarial, keep=False)
    resolve_device(runtime.device)  # --device cuda without a GPU: one line, before anything loads
    runtime = runtime.with_device(device_name(runtime.device))
    run, source = _load_models(run_or_ckpt, surrogate, parsed, runtime.device, registry)
    where = {"model": run.model_block()} if hasattr(run, "model_block") else {"checkpoint": str(run.checkpoint)}
    label = run.label if hasattr(run, "model_block") else run.checkpoint
    dataset = load_split(run.dataset, "test", data_root, registry=registry)
    collector = AdversarialCollector() if save_adversarial else None
    options = AttackOptions.for_dataset(run.dataset, registry, max_batches=max_batches, max_queries=max_queries, seed=seed,
                                        semantics=semantics, progress=not (no_progress or quiet or as_json), random_start=random_start,
                                        **{k: v for k, v in runtime.fields().items() if k != "num_workers"})
    warning = short_steps(build_attack(parsed, options, registry=registry), parsed.text)
    if warning is not None:
        click.echo(warning, err=True)
    result = run_attack(run.model, dataset, parsed, options, surrogate=source.model if source is not None else None,
                        on_batch=collector, registry=registry)
    if source is not None:
        where["surrogate"] = str(source.checkpoint)
    if collector is not None:
        saved = collector.save(save_adversarial, dataset, spec=result.spec, dataset_name=run.dataset, model=str(label))
        where["adversarial"] = str(saved)
    bounds = registered_bounds(str(parsed.type), registry)
    for side, summary in (("clean", result.orig), ("adversarial", result.adv)):
        for key, value in summary.items():  # a NaN or out-of-range average is never printed as a result
            check_metric(key, float(value), f"{result.spec} ({side})", bounds)
    if as_json:
        limits = {"queries": len(dataset), "max_queries": max_queries, "max_batches": max_batches}  # the coverage: count of queries
        click.echo(json.dumps({**result.as_dict(), **limits, **where}, indent=2))
        return
    _print_result(result, run, source, label, len(dataset), where if collector is not None else None)


def _load_models(run_or_ckpt: object, surrogate: str | None, parsed: Any, device: str, registry: Registry) -> tuple[Any, Any]:
    """The target and the transfer surrogate (or None), checked to be the same kind of model on the same data."""
    from ..attacks import check_task  # lazy: keeps robrank --help torch-free
    from ..models.external import load_any  # lazy: keeps robrank --help torch-free

    run = load_any(run_or_ckpt, device=device, registry=registry)
    source = load_any(surrogate, device=device, registry=registry) if surrogate is not None else None
    task = getattr(run, "task", None)
    if task is not None:
        check_task(parsed, task, registry=registry)
    source_task = getattr(source, "task", None)
    if source is not None and task is not None and source_task is not None and source_task != task:
        raise ConfigError(f"the surrogate {surrogate} is a {source_task} model but the target a {task} model")
    if source is not None and source.dataset != run.dataset:
        raise ConfigError(
            f"the surrogate {source.checkpoint} was trained on {source.dataset} but the target on {run.dataset}; "
            "a transfer attack needs both on the same test split"
        )
    return run, source


def _print_result(result: Any, run: Any, source: Any, label: object, total: int, where: dict[str, str] | None) -> None:
    from ..metrics import tie_note  # lazy: keeps robrank --help torch-free

    coverage = f"{result.count} samples" if result.count >= total else f"{result.count} of {total} samples: partial, not a full result"
    click.echo(f"{result.spec} on {label} ({run.dataset}, metric {run.metric}, {coverage}, {result.seconds:.1f} s)")
    if source is not None:
        click.echo(f"transfer from surrogate {source.checkpoint} (metric {source.metric})")
    _print_summary("Original", result.orig)
    _print_summary("Adversarial", result.adv)
    _print_summary("Difference", result.difference)
    if result.budget:
        click.echo(f"Budget per sample: {result.budget.get('gradients', 0):g} gradient evaluations, {result.budget.get('forwards', 0):g} forward passes")
    for name, member in result.members.items():
        _print_summary(f"Member {name}", member["adv"])
    for key, counts in result.wins.items():
        click.echo(f"Won {key}: " + ", ".join(f"{name} {n}" for name, n in counts.items()))
    if where is not None:
        click.echo(f"adversarial images: {where['adversarial']}")
    note = tie_note(None if result.top_ties is None else result.top_ties / 100.0)
    if note:
        click.echo(note)
