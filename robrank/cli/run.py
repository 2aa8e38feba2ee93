"""``robrank run``: train (optionally with a defense), swipe the ERS profile, print the report.

One command for the whole experiment of a table row: ``robrank run --plugin act --dataset
fashion`` trains C2F2 with ACT, attacks it with the profile that fits the image size
(rob28 / rob224, from the DatasetRecord) and prints raw scores, rescaled scores and ERS.
Everything lands in one run directory: config.json (with a ``run`` section saying which
defaults this command chose), checkpoints/, metrics.jsonl, swipe-<profile>.json,
report.md / report.txt / report.html and the ERS figure ers.png.

With no options it is the quickstart: the embedded ``digits`` dataset (no download), the
reference's other 28x28 backbone LeNet (C2F2 needs 6x its multiply-adds per image, which a full rob28
swipe cannot afford in two minutes on a 2-core CPU), ``ptripletN``, no defense, the
reference's 8 epochs and the complete rob28 swipe of the 364 test digits.

``--resume`` continues a killed run: training from its last checkpoint, then the swipe from
its last finished attack. A missing dataset fails before any work, with the dataset's
one-line "where to put the files" message.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

#: the quickstart: what ``robrank run`` with no options trains
QUICKSTART_DATASET = "digits"
QUICKSTART_BACKBONE = "lenet"
#: default backbone per image-size family when --backbone is not given (the published tables)
DEFAULT_BACKBONES: dict[int, str] = {28: "c2f2", 224: "resnet18"}
DEFAULT_LOSS = "ptripletN"
REPORT_MD = "report.md"
REPORT_TXT = "report.txt"
REPORT_HTML = "report.html"
ERS_FIGURE = "ers.png"
RUN_SECTION = "run"

_TRAIN_KEYS = (
    "dataset", "backbone", "loss", "metric", "miner", "epochs", "batch_size", "lr", "weight_decay", "optimizer",
    "embedding_dim", "pretrained", "weights", "freeze_bn", "seed", "device", "amp", "num_workers", "validate_every",
    "val_batch_size", "data_root", "run_dir", "max_steps", "checkpoint_every",
)


def _parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key, value) with JSON-ish values (numbers, true/false) decoded."""
    from ..errors import ConfigError

    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise ConfigError(f"defense option {text!r} is not KEY=VALUE (e.g. -o src=softhard -o ics=true)")
    raw = raw.strip()
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def _default_swipe_device(device: str | None) -> str:
    import torch

    if device and device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def plan_run(options: dict[str, Any], *, triple: str | None = None, resume: bool = False) -> tuple[Any, dict[str, Any]]:
    """The TrainConfig of a ``robrank run`` and the defaults it chose (recorded in config.json).

    Checks, before any work: names resolve, the dataset is a retrieval dataset whose files
    are present, and the defense composes with the loss and metric.
    """
    from ..data.loading import dataset_record, locate
    from ..errors import ConfigError
    from ..plugins import get_registry
    from ..records import size_family
    from ..training.config import TrainConfig, parse_triple, resolve_config
    from ..training.engine import make_defense

    values = {k: options[k] for k in _TRAIN_KEYS if options.get(k) is not None}
    defense_options = {k: options[k] for k in ("eps", "alpha", "pgditer") if options.get(k) is not None}
    defense = options.get("defense")
    chosen: dict[str, Any] = {}
    if triple:
        for key in ("dataset", "backbone", "loss"):
            if key in values:
                raise ConfigError(f"give either -C DATASET:MODEL:LOSS or --{key}, not both")
        parsed = parse_triple(triple)
        values.update(dataset=parsed.dataset, backbone=parsed.backbone, loss=parsed.loss)
        if parsed.defense != "none":
            if defense and defense != parsed.defense:
                model = triple.split(":")[1]
                raise ConfigError(f"-C model {model!r} already implies defense {parsed.defense!r}; drop --plugin")
            defense = parsed.defense
            defense_options = {**parsed.defense_options, **defense_options}
    if "dataset" not in values:
        values["dataset"] = chosen["dataset"] = QUICKSTART_DATASET
    record = dataset_record(values["dataset"])
    values["dataset"] = record.name
    if record.task != "retrieval":
        raise ConfigError(
            f"dataset {record.name!r} is {record.task}-only; robrank run measures ranking robustness "
            "on a retrieval dataset (robrank list datasets)"
        )
    if "backbone" not in values:
        family = size_family(record.image_size)
        backbone = QUICKSTART_BACKBONE if record.name == QUICKSTART_DATASET else DEFAULT_BACKBONES[family]
        values["backbone"] = chosen["backbone"] = backbone
    if "loss" not in values:
        values["loss"] = chosen["loss"] = DEFAULT_LOSS
    if not defense:
        defense = chosen["defense"] = "none"
    for text in options.get("defense_option") or ():
        key, value = _parse_option(text)
        defense_options[key] = value
    if options.get("ics"):
        defense_options["ics"] = True
    if defense_options and defense == "none":
        given = ", ".join(sorted(defense_options))
        raise ConfigError(f"defense options {given} given but no defense; add --plugin est/act/ses/hm")
    values["defense"] = defense
    if defense_options:
        values["defense_options"] = defense_options
    config = TrainConfig(**values)
    locate(config.dataset, config.data_root)  # missing files: the dataset's one-line message, before any work
    if not resume:
        registry = get_registry()
        resolved = resolve_config(config, registry)
        built = make_defense(resolved, registry)
        from ..losses import resolve_loss

        choice = resolve_loss(resolved.loss, metric=resolved.metric, miner=resolved.miner or None, registry=registry)
        built.check(choice.record, choice.metric)
    return config, chosen


def _record_run(run_dir: Path, section: dict[str, Any]) -> None:
    """Add the ``run`` section to the run's config.json (atomically, keeping the engine's content)."""
    from ..io import write_json

    path = run_dir / "config.json"
    payload = json.loads(path.read_text()) if path.is_file() else {}
    payload[RUN_SECTION] = section
    write_json(path, payload)


def _header(
    config: dict[str, Any], trained: tuple[int, int], metrics: dict[str, float], profile: str, ers: float | None
) -> list[str]:
    defense = config.get("defense") or "none"
    options = config.get("defense_options") or {}
    shown = ", ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in options.items())
    lines = [
        f"run: {config.get('dataset')} / {config.get('backbone')} / {config.get('loss')} / defense {defense}"
        + (f" ({shown})" if shown else ""),
        f"trained: {trained[0]} epoch(s), {trained[1]} step(s), batch {config.get('batch_size')} pairs, "
        f"lr {config.get('lr')}, seed {config.get('seed')}",
    ]
    if metrics:
        shown_metrics = (f"{k} {100 * v:.1f}" for k, v in metrics.items() if k in ("R@1", "R@2", "mAP", "NMI"))
        lines.append("clean: " + "  ".join(shown_metrics))
    lines.append(f"robustness ({profile}): ERS {'n/a' if ers is None else f'{ers:.1f}'}")
    return lines


def write_report(
    run_dir: Path,
    results: Path,
    config: dict[str, Any],
    trained: tuple[int, int],
    metrics: dict[str, float],
    profile: str,
) -> str:
    """report.txt / report.md / report.html and the ERS figure in the run directory; returns the text version.

    Without matplotlib (the ``plot`` extra) the figure is skipped and report.html holds the
    tables only, saying so: a finished swipe is never lost to a missing optional package.
    """
    from ..errors import RobrankError
    from ..io import write_text
    from ..swipe.html import format_html
    from ..swipe.report import format_report, load_summaries

    summaries = load_summaries([results])
    ers = summaries[0].ers if summaries else None
    head = _header(config, trained, metrics, profile, ers)
    text = "\n".join(head) + "\n\n" + format_report(summaries, "table")
    markdown = "\n".join(f"- {line}" for line in head) + "\n\n" + format_report(summaries, "markdown")
    figure = None
    if summaries and summaries[0].ers_profile:
        from ..plot.ers import plot_ers

        try:
            figure = plot_ers([results], run_dir / ERS_FIGURE)
        except RobrankError as exc:
            if "matplotlib" not in str(exc):
                raise
    if figure is not None:
        markdown += f"\n![ERS scores per attack]({ERS_FIGURE})\n"
    write_text(run_dir / REPORT_TXT, text)
    write_text(run_dir / REPORT_MD, markdown)
    write_text(run_dir / REPORT_HTML, format_html(summaries, title=f"robrank run {run_dir.name}", header=head))
    return text


@click.command("run")
@click.option("--plugin", "--defense", "defense", default=None, help="Defense to train with (robrank list defenses): none, est, act, ses, hm [none].")
@click.option("-C", "--config", "triple", metavar="DATASET:MODEL:LOSS", default=None, help="Reference-style config, e.g. fashion:rc2f2p:ptripletN (p = ACT, d = EST, e = SES).")
@click.option("--dataset", default=None, help=f"Dataset (robrank list datasets) [{QUICKSTART_DATASET}: embedded, no download].")
@click.option("--backbone", default=None, help=f"Backbone [{QUICKSTART_BACKBONE} for {QUICKSTART_DATASET}, c2f2 for other 28x28 data, resnet18 for 224x224].")
@click.option("--loss", default=None, help=f"Loss: a reference name or a family with --metric/--miner [{DEFAULT_LOSS}].")
@click.option("--metric", type=click.Choice(["C", "E", "N"]), default=None, help="Distance metric when --loss is a family name.")
@click.option("--miner", default=None, help="Triplet miner (robrank list miners) [the loss's own].")
@click.option("--eps", type=float, default=None, help="Defense: L-inf budget in [0,1] pixels [28x28: 77/255, 224x224: 8/255].")
@click.option("--alpha", type=float, default=None, help="Defense: PGD step size [28x28: 3/255, 224x224: 1/255].")
@click.option("--pgditer", type=click.IntRange(min=1), default=None, help="Defense: PGD steps, 1 = FGSM [32].")
@click.option("-o", "--option", "defense_option", multiple=True, metavar="KEY=VALUE", help="A defense-specific option, repeatable (e.g. -o src=softhard -o miner_margin=loss); see docs/defenses.md.")
@click.option("--ics", is_flag=True, default=None, help="HM: add the intra-class structure term (HM[S,g_LGA]&ICS).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs of SPC-2 pairs [8 for 28x28, 75 for 224x224].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Training batch in SPC-2 pairs [128 / 56].")
@click.option("--lr", type=float, default=None, help="Learning rate [1e-3 / 1e-5].")
@click.option("--weight-decay", type=float, default=None, help="Weight decay [1e-7 / 4e-4].")
@click.option("--optimizer", default=None, help="torch.optim class [Adam].")
@click.option("--embedding-dim", type=click.IntRange(min=1), default=None, help="Embedding size [the backbone's].")
@click.option("--pretrained", type=click.Choice(["imagenet", "none"]), default=None, help="Initial weights [imagenet where available].")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None, help="Local file with the backbone's initial weights.")
@click.option("--freeze-bn/--no-freeze-bn", "freeze_bn", default=None, help="Keep BatchNorm in eval mode [on for 224x224 unless the defense trains BN].")
@click.option("--seed", type=int, default=None, help="Seed of training and of the swipe's random selections [0].")
@click.option("--device", default=None, help="cpu, cuda, cuda:N or auto, for training and swipe [auto].")
@click.option("--amp", is_flag=True, default=None, help="Mixed precision training.")
@click.option("--num-workers", type=click.IntRange(min=0), default=None, help="DataLoader workers for file datasets.")
@click.option("--validate-every", type=click.IntRange(min=1), default=None, help="Validate every N epochs.")
@click.option("--val-batch-size", type=click.IntRange(min=1), default=None, help="Batch size when embedding the test split.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=str), default=None, help="Dataset root [$ROBRANK_DATA].")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=str), default=None, help="Run directory [runs/DATASET-BACKBONE-LOSS[-DEFENSE]-TIMESTAMP].")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop training after this many steps (quick checks).")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, help="Also checkpoint every N steps inside an epoch.")
@click.option("-p", "--profile", default=None, help="Swipe profile [the dataset's: rob28 or rob224].")
@click.option("--swipe-batch-size", type=click.IntRange(min=1), default=None, help="Queries per attack batch (speed only) [the dataset's evaluation batch].")
@click.option("-m", "--max-batches", type=click.IntRange(min=1), default=None, help="Stop each attack after this many batches (quick checks; not a full ERS).")
@click.option("--semantics", type=click.Choice(["reference", "fixed"]), default="reference", show_default=True, help="Attack semantics of the swipe.")
@click.option("--resume", is_flag=True, help="Continue a killed run (--run-dir, or the newest matching run): training from its checkpoint, the swipe from its last attack.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def run_command(
    triple: str | None,
    profile: str | None,
    swipe_batch_size: int | None,
    max_batches: int | None,
    semantics: str,
    resume: bool,
    no_progress: bool,
    **options: Any,
) -> None:
    """Train with a defense, swipe the ERS profile, print the report — in one run directory.

    \b
    Examples:
      robrank run                                   # quickstart: digits, lenet, ptripletN, no defense
      robrank run --plugin act --dataset fashion    # ACT on Fashion-MNIST (C2F2), rob28, ERS
      robrank run --plugin hm --ics --dataset cub   # HM[S,g_LGA]&ICS on CUB (ResNet-18), rob224
      robrank run --plugin act --dataset cars       # fails at once if Cars-196 is not installed
      robrank run --resume --run-dir runs/...       # continue after a kill
    """
    from ..swipe.runner import resolve_profile, swipe
    from ..training import train
    from ..training.rundir import read_config

    config, chosen = plan_run(options, triple=triple, resume=resume)
    resume_training = resume
    if resume and config.run_dir and not (Path(config.run_dir) / "checkpoints" / "last.pt").is_file():
        resume_training = False  # killed before its first checkpoint: start it again in place
        plan_run(options, triple=triple, resume=False)
    if not resume_training and not config.run_dir:
        from ..training.config import resolve_config
        from ..training.rundir import new_run_dir

        config.run_dir = str(new_run_dir(resolve_config(config)))
    from ..data.loading import dataset_record

    record = dataset_record(config.dataset)
    profile_record = resolve_profile(profile or record.profile)  # unknown profile: fail before training
    progress = not no_progress
    if config.run_dir:
        click.echo(f"run: {config.run_dir}")

    result = train(config, resume=resume_training, progress=progress)
    run_dir = Path(result.run_dir)
    saved = read_config(run_dir)
    seed = int(saved.get("seed") or 0)
    swipe_device = _default_swipe_device(saved.get("device"))
    section = {
        "command": "robrank run",
        "defaults_chosen": chosen,
        "quickstart": chosen.get("dataset") == QUICKSTART_DATASET,
        "profile": profile_record.name,
        "swipe": {
            "batch_size": swipe_batch_size,
            "max_batches": max_batches,
            "semantics": semantics,
            "seed": seed,
            "device": swipe_device,
        },
        "swipe_file": f"swipe-{profile_record.name}{'' if semantics == 'reference' else '-' + semantics}.json",
        "reports": [REPORT_MD, REPORT_TXT, REPORT_HTML, ERS_FIGURE],
    }
    _record_run(run_dir, section)
    try:
        results = swipe(
            run_dir,
            profile_record.name,
            device=swipe_device,
            batch_size=swipe_batch_size,
            max_batches=max_batches,
            seed=seed,
            semantics=semantics,
            data_root=saved.get("data_root"),
            progress=progress,
        )
    except KeyboardInterrupt:
        click.echo(
            "robrank run: interrupted; finished attacks are saved, continue with: "
            f"robrank run --resume --run-dir {run_dir}",
            err=True,
        )
        sys.exit(130)
    trained = (result.epochs, result.steps)
    text = write_report(run_dir, Path(results), saved, trained, result.metrics, profile_record.name)
    click.echo(text, nl=False)
    listing = f"config.json, checkpoints/, metrics.jsonl, {Path(results).name}, {REPORT_MD}, {REPORT_TXT}, {REPORT_HTML}"
    if (run_dir / ERS_FIGURE).is_file():
        listing += f", {ERS_FIGURE}"
    click.echo(f"files: {run_dir}/{{{listing}}}")
