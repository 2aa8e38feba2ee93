"""``robrank train``: train an embedding model into a run directory."""
from __future__ import annotations

from typing import Any

import click

from ..metrics import format_metrics

_BATCH_HELP = (
    "SPC-2 pairs per step PER PROCESS (2x that many images); with --devices N or torchrun the "
    "effective batch is batch-size x N, as in the reference [default: 128 for 28x28, 56 for 224x224]."
)


@click.command("train")
@click.option("-C", "--config", "triple", metavar="DATASET:MODEL:LOSS", default=None,
              help="Reference-style config, e.g. mnist:c2f2:ptripletN or mnist:rc2f2p:ptripletN (p = ACT, d = EST, e = SES, pf/df = FGSM).")
@click.option("--dataset", default=None, help="Dataset name (robrank list datasets).")
@click.option("--backbone", default=None, help="Backbone name or alias (robrank list backbones).")
@click.option("--loss", default=None, help="Loss: a reference name (ptripletN) or a family (triplet) with --metric/--miner.")
@click.option("--metric", type=click.Choice(["C", "E", "N"]), default=None, help="Distance metric when --loss is a family name.")
@click.option("--miner", default=None, help="Triplet miner (robrank list miners) [default: the loss's own].")
@click.option("--defense", default=None, help="Adversarial-training defense (robrank list defenses) [default: none].")
@click.option("--eps", type=float, default=None, help="Defense: L-inf budget in [0,1] pixels [28x28: 77/255, 224x224: 8/255].")
@click.option("--alpha", type=float, default=None, help="Defense: PGD step size [28x28: 3/255, 224x224: 1/255].")
@click.option("--pgditer", type=click.IntRange(min=1), default=None, help="Defense: PGD steps (1 = FGSM) [32].")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs of SPC-2 pairs [8 for 28x28, 75 for 224x224].")
@click.option("-b", "--batch-size", "batch_size", type=click.IntRange(min=1), default=None, help=_BATCH_HELP)
@click.option("--lr", type=float, default=None, help="Learning rate [1e-3 for 28x28, 1e-5 for 224x224].")
@click.option("--weight-decay", type=float, default=None, help="Weight decay [1e-7 for 28x28, 4e-4 for 224x224].")
@click.option("--optimizer", default=None, help="torch.optim class for the backbone [Adam].")
@click.option("--embedding-dim", type=click.IntRange(min=1), default=None, help="Embedding size [the backbone's: 512, lenet 128].")
@click.option("--pretrained", type=click.Choice(["imagenet", "none"]), default=None, help="Initial weights [imagenet where the backbone has them].")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None, help="Local file with the backbone's initial weights.")
@click.option("--freeze-bn/--no-freeze-bn", "freeze_bn", default=None, help="Keep BatchNorm in eval mode [on for 224x224, unless the defense trains BN].")
@click.option("--seed", type=int, default=None, help="Seed of initialisation and sampling [0].")
@click.option("--device", default=None, help="cpu, cuda, cuda:N or auto [auto].")
@click.option("--devices", type=click.IntRange(min=1), default=None, help="Processes to train with (DDP; one per GPU, or gloo on CPU). batch-size is per process.")
@click.option("--amp", is_flag=True, default=None, help="Mixed precision (fp16 on CUDA, bf16 on CPU).")
@click.option("--compile", "compile", is_flag=True, default=None, help="torch.compile the backbone (speed on a GPU; the first steps compile).")
@click.option("--num-workers", type=click.IntRange(min=0), default=None, help="DataLoader workers for file datasets [min(8, CPUs)].")
@click.option("--validate-every", type=click.IntRange(min=1), default=None, help="Validate every N epochs [1 for 28x28, 5 for 224x224].")
@click.option("--val-batch-size", type=click.IntRange(min=1), default=None, help="Batch size when embedding the test split [128 / 112].")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=str), default=None, help="Dataset root [default: $ROBRANK_DATA].")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=str), default=None, help="Run directory [runs/DATASET-BACKBONE-LOSS[-DEFENSE]-TIMESTAMP].")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir (or the newest matching one under runs/) from its last checkpoint.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop after this many optimiser steps (quick checks).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, help="Also checkpoint every N steps inside an epoch.")
@click.option("--keep-epochs", is_flag=True, default=None, help="Keep checkpoints/epoch-E.pt for every epoch besides last.pt.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def train_command(triple: str | None, resume: bool, devices: int | None, no_progress: bool, **options: Any) -> None:
    """Train an embedding model on SPC-2 pair batches and print its retrieval metrics.

    \b
    Examples:
      robrank train -C mnist:c2f2:ptripletN
      robrank train -C fashion:rc2f2p:ptripletN          # ACT adversarial training
      robrank train --dataset cub --backbone resnet18 --loss ptripletN --devices 2
      robrank train --resume --run-dir runs/mnist-c2f2-ptripletN-20250101-120000
    """
    from ..training import train
    from ..training.config import TrainConfig
    from ..training.distributed import from_env
    from ..training.rundir import read_config

    config = build_config(triple, options, resume=resume)
    if resume and config is None:
        run_dir = options.get("run_dir")
        if not run_dir:
            raise click.UsageError("--resume needs -C/--dataset... to find the newest run, or --run-dir DIR")
        from pathlib import Path

        saved = read_config(Path(run_dir))
        explicit = {k: v for k, v in _knobs(options).items() if v is not None}
        config = TrainConfig.from_dict({**saved, **explicit})
    result = train(config, resume=resume, progress=not no_progress, devices=devices)
    if from_env().rank != 0:  # under torchrun the summary comes once, from global rank 0
        return
    click.echo(f"run: {result.run_dir}")
    click.echo(f"trained {result.epochs} epoch(s), {result.steps} step(s) in {result.seconds:.1f} s")
    if result.metrics:
        click.echo(format_metrics(result.metrics))


_DEFENSE_KEYS = ("eps", "alpha", "pgditer")


def _knobs(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in _DEFENSE_KEYS}


def build_config(triple: str | None, options: dict[str, Any], *, resume: bool = False) -> Any:
    """A TrainConfig from -C or --dataset/--backbone/--loss plus the explicit options (None: resume by --run-dir)."""
    from ..training.config import TrainConfig, parse_triple

    defense_options = {k: options[k] for k in _DEFENSE_KEYS if options.get(k) is not None}
    knobs = {k: v for k, v in _knobs(options).items() if v is not None}
    parts: dict[str, Any] = {}
    if triple:
        for key in ("dataset", "backbone", "loss"):
            if knobs.get(key):
                raise click.UsageError(f"give either -C DATASET:MODEL:LOSS or --{key}, not both")
        parsed = parse_triple(triple)
        parts = {"dataset": parsed.dataset, "backbone": parsed.backbone, "loss": parsed.loss}
        if parsed.defense != "none":
            if knobs.get("defense") and knobs["defense"] != parsed.defense:
                raise click.UsageError(f"-C model {triple.split(':')[1]!r} already implies defense {parsed.defense!r}; drop --defense")
            knobs["defense"] = parsed.defense
            defense_options = {**parsed.defense_options, **defense_options}
    else:
        missing = [k for k in ("dataset", "backbone", "loss") if not knobs.get(k)]
        if missing:
            if resume and len(missing) == 3:
                return None
            raise click.UsageError(f"missing --{', --'.join(missing)} (or give -C DATASET:MODEL:LOSS, e.g. -C mnist:c2f2:ptripletN)")
    values = {**knobs, **parts}
    if defense_options:
        values["defense_options"] = defense_options
    return TrainConfig(**values)
