"""``robrank eval``: retrieval metrics of a trained model on its dataset's test split."""
from __future__ import annotations

import json

import click

from .external_model import external_model_options
from .options import data_root_option, json_option, runtime_options
from ..plugins import get_registry
from ..runtime import RuntimeOptions


@click.command("eval")
@click.argument("run_or_ckpt", metavar="[RUN_OR_CKPT]", type=click.Path(exists=True, path_type=str), required=False)
@external_model_options
@runtime_options("Images per embedding batch [the run's val batch size].")
@data_root_option
@click.option("--self-exclusion", type=click.Choice(["index", "reference"]), default="index",
              help="index: leave each query's own index out of its ranking; reference: drop the nearest item (the reference code) [default: index].")
@json_option
def eval_command(run_or_ckpt: object, runtime: RuntimeOptions, data_root: str | None, self_exclusion: str, as_json: bool) -> None:
    """Print R@1, R@2, mAP, mAP@R and NMI of the model at RUN_OR_CKPT (or --model) on its test split (query = gallery); accuracy for a classifier."""
    from ..training.evaluate import evaluate_run  # lazy: keeps robrank --help torch-free

    metrics, loaded = evaluate_run(run_or_ckpt, runtime=runtime, data_root=data_root, self_exclusion=self_exclusion,
                                   registry=get_registry())
    if as_json:
        where = {"model": loaded.model_block()} if hasattr(loaded, "model_block") else {"checkpoint": str(loaded.checkpoint), "epoch": loaded.epoch}
        from ..metrics import in_percent  # lazy: keeps robrank --help torch-free

        click.echo(json.dumps({**where, **in_percent(metrics)}, indent=2))
        return
    if hasattr(loaded, "model_block"):
        click.echo(f"{loaded.label} ({loaded.dataset}, metric {loaded.metric}, normalize {loaded.source['normalize']['name']})")
    else:
        click.echo(f"{loaded.checkpoint} ({loaded.dataset}, metric {loaded.metric}, epoch {loaded.epoch})")
    from ..metrics import REPORTED_KEYS, TIES_KEY, tie_note  # lazy: keeps robrank --help torch-free

    for key in (*REPORTED_KEYS, "accuracy"):
        if key in metrics:
            click.echo(f"{key:<6} {100.0 * metrics[key]:6.2f}")
    note = tie_note(metrics.get(TIES_KEY))
    if note:
        click.echo(note)
