"""``robrank bench``: the recommended evaluation and its model card; ``--verify CARD`` checks a card."""
from __future__ import annotations

import click

from .external_model import resolve_target
from .options import EXTERNAL_MODEL_KEYS, data_root_option, echo_json, external_model_group, max_batches_option, output_group, runtime_options
from ..plugins import get_registry
from ..runtime import RuntimeOptions


@click.command("bench")
@click.argument("run_or_ckpt", metavar="[RUN_OR_CKPT]", type=click.Path(exists=True, path_type=str), required=False)
@external_model_group
@click.option("--output", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Folder of the swipes and card.json [default: RUN/bench, CKPT.bench, or beside --model's file; -draft for drafts].")
@runtime_options("Queries per attack batch (a speed knob) [default: automatic].")
@max_batches_option
@click.option("--max-queries", type=click.IntRange(min=1), default=None, help="Attack only the first N queries: a DRAFT card, never a benchmark result.")
@click.option("--seed", type=int, default=0, help="Seed of every attack's random selection [default: 0].")
@click.option("--name", default=None, help="The entry's name on a leaderboard [default: the run directory or model spec].")
@data_root_option
@click.option("--restart", is_flag=True, help="Discard the bench's swipe files instead of continuing them.")
@click.option("--verify", "verify_card", type=click.Path(dir_okay=False, path_type=str), default=None, metavar="CARD",
              help="Re-evaluate a random sample of queries of CARD's model and check its numbers (exit 1 when they do not hold).")
@click.option("--sample", type=click.IntRange(min=1), default=64, help="--verify: queries re-attacked [default: 64].")
@click.option("--sample-seed", type=int, default=0, help="--verify: seed of the sample [default: 0].")
@click.option("--confidence", type=click.FloatRange(0.5, 0.999999), default=0.999, help="--verify: two-sided confidence of each column's bound [default: 0.999].")
@click.option("--no-record", is_flag=True, help="--verify: do not record a passed verification in the card.")
@output_group
def bench_command(run_or_ckpt: object, output: str | None, runtime: RuntimeOptions, max_batches: int | None, max_queries: int | None,
                  seed: int, name: str | None, data_root: str | None, restart: bool, verify_card: str | None,
                  sample: int, sample_seed: int, confidence: float, no_record: bool, as_json: bool, quiet: bool, no_progress: bool,
                  **model_options: object) -> None:
    """Evaluate the model at RUN_OR_CKPT (or --model) the recommended way and write its model card.

    On the full test split: clean metrics, the dataset's reference profile (comparable with
    published ERS) and its worst-case profile (the number to rank by). Resumable: rerun the
    same command after a kill. -m/--max-queries give a DRAFT card. docs/bench.md.
    """
    progress = not (no_progress or quiet or as_json)
    given_model = run_or_ckpt is not None or model_options.get("model") is not None
    if verify_card is None or given_model:  # --verify CARD alone loads the model the card names
        run_or_ckpt = resolve_target(run_or_ckpt, **{k: model_options[k] for k in EXTERNAL_MODEL_KEYS})  # type: ignore[arg-type]
    if verify_card is not None:
        _verify(verify_card, run_or_ckpt, sample, sample_seed, confidence, runtime.device, data_root, not no_record, as_json, progress)
        return
    from ..cards.bench import bench  # lazy: keeps robrank --help fast
    from ..cards.summary import summary  # lazy: keeps robrank --help fast

    path, card = bench(run_or_ckpt, output=output, runtime=runtime, max_batches=max_batches,
                       max_queries=max_queries, seed=seed, data_root=data_root, restart=restart, progress=progress, name=name,
                       registry=get_registry())
    if as_json:
        echo_json({"card_file": str(path), "card": card})
        return
    click.echo(summary(card, path), nl=False)


def _verify(card_path: str, target: object, sample: int, sample_seed: int, confidence: float, device: str | None,
            data_root: str | None, record: bool, as_json: bool, progress: bool) -> None:
    from ..cards.verify import verify, verify_table  # lazy: keeps robrank --help fast

    outcome = verify(card_path, target=target, sample=sample, seed=sample_seed, confidence=confidence, device=device,
                     data_root=data_root, record=record, progress=progress, registry=get_registry())
    if as_json:
        echo_json(outcome)
    else:
        click.echo(verify_table(outcome), nl=False)
    if not outcome["passed"]:
        raise SystemExit(1)
