"""Option groups and option types shared by the commands, declared once.

A command stacks the groups it needs (``@training_options``, ``@runtime_options(...)`` ...), so
``train`` and ``run`` accept the same training options with the same help, and a short
option means one thing in every command:

====  ===================  ==========================================================
``-C``  ``--config``         reference triple DATASET:MODEL:LOSS (train, run)
``-b``  ``--batch-size``     the batch of the command's main loop (training pairs; attack
                             queries; embedding images)
``-D``  ``--device``         cpu, cuda, cuda:N or auto
``-o``  ``--option``         a defense option KEY=VALUE (train, run)
``-p``  ``--profile``        swipe profile (swipe, run)
``-m``  ``--max-batches``    stop each attack after N batches (attack, swipe, run, sweep);
                             ``--max-queries N`` (long only) stops after N queries, whatever the batch size
``-A``  ``--attack``         attack spec (attack)
``-f``  ``--format``         output format (report)
``-q``  ``--quiet``          no progress bars or progress lines, only the result
====  ===================  ==========================================================

Defaults are shown one way everywhere: ``[default: X]`` at the end of the help text (options
whose "not given" matters, e.g. for ``--resume``, default to None and state their default
in words). New shared options and types belong here, so other commands can reuse them.
"""
from __future__ import annotations

import difflib
import functools
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import click

from ..plugins import Registry
from ..records import NO_WEIGHTS
from ..runtime import AUTO, RuntimeOptions
from ..semantics import REFERENCE, SEMANTICS
from ..errors import ConfigError

F = Callable[..., Any]


def with_default(text: str, default: Any) -> str:
    """``text`` with the default in the one style every command uses: ``Text [default: X].``"""
    return f"{text.rstrip('.')} [default: {default}]."


def group(*decorators: F) -> F:
    """Several click decorators as one (applied in the order listed, top to bottom in --help)."""
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


# --------------------------------------------------------------------------------- types


class KeyValue(click.ParamType):
    """``KEY=VALUE`` -> (key, value), values decoded as JSON where they parse (numbers, true/false)."""

    name = "KEY=VALUE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, Any]:
        if isinstance(value, tuple):
            return value

        try:
            return parse_key_value(str(value))
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


def parse_key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key, value) with JSON-ish values (numbers, true/false) decoded."""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise ConfigError(f"option {text!r} is not KEY=VALUE (e.g. -o src=softhard -o ics=true)")
    raw = raw.strip()
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    try:
        value = json.loads(raw)
    except ValueError:
        return key, raw
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"option {text!r}: {raw} is not a finite number; give a plain number")
    return key, value


class SuggestingChoice(click.Choice):
    """A Choice that also accepts a unique prefix or the singular of a plural choice, and
    suggests the closest choices for anything else (``robrank list attack`` -> attacks)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        folded = {c.lower(): c for c in self.choices}
        if text.lower() in folded:
            return folded[text.lower()]
        for candidate in (text.lower() + "s", text.lower() + "es"):
            if candidate in folded:
                return folded[candidate]
        starts = [c for low, c in folded.items() if low.startswith(text.lower())]
        if len(starts) == 1:
            return starts[0]
        close = difflib.get_close_matches(text.lower(), list(folded), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(folded[c]) for c in close)}?" if close else ""
        self.fail(f"{text!r} is not one of {', '.join(map(repr, self.choices))}{hint}", param, ctx)


class FiniteFloat(click.FloatRange):
    """A float that must be finite, optionally within ``[min, max]`` (click's range semantics).

    ``click.FloatRange`` lets ``nan`` through (every comparison with NaN is false) and ``float``
    accepts ``inf``; a learning rate of ``nan`` then fails with a traceback in the optimiser,
    and ``inf`` trains a broken model that fails later in faiss. This refuses both where the
    user typed them, naming the option.
    """

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number; give a plain number such as 0.001", param, ctx)
        return super().convert(number, param, ctx)


#: any finite float; >= 0 (learning rate, weight decay, step sizes); in [0, 1] (an L-inf budget in pixels)
FINITE = FiniteFloat()
NON_NEGATIVE = FiniteFloat(min=0.0)
UNIT_INTERVAL = FiniteFloat(min=0.0, max=1.0)


def suggest(name: str, known: Sequence[str]) -> str:
    """``; did you mean 'x'?`` for the closest known names, or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


# ----------------------------------------------------------------------- single options

device_option = click.option(
    "-D", "--device", default=None, help=with_default("cpu, cuda, cuda:N or auto (CUDA when torch sees a GPU).", AUTO)
)
data_root_option = click.option(
    "--data-root", type=click.Path(file_okay=False, path_type=str), default=None,
    help=with_default("Dataset root.", "$ROBRANK_DATA, then each dataset's own places"),
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (nothing else on stdout).")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bars or progress lines; print only the result.")
no_progress_option = click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
output_group = group(json_option, quiet_option, no_progress_option)
seed_option = click.option("--seed", type=int, default=None, help=with_default("Seed of initialisation, sampling and the attacks' random selections.", 0))
semantics_option = click.option(
    "--semantics", type=click.Choice(SEMANTICS), default=None,
    help=with_default("reference: reproduce the reference attacks' quirks (published ERS); fixed: corrected attacks.", REFERENCE),
)
max_batches_option = click.option(
    "-m", "--max-batches", type=click.IntRange(min=1), default=None,
    help="Stop each attack after this many batches (quick checks; not a full result).",
)
max_queries_option = click.option(
    "--max-queries", type=click.IntRange(min=1), default=None,
    help="Attack only the first N test images (quick checks; not a full result). Unlike -m, N does not depend on the batch size.",
)
profile_option = click.option("-p", "--profile", default=None, help="Swipe profile (robrank list profiles).")
force_profile_option = click.option(
    "--force", is_flag=True, help="Swipe even when the profile's image size does not fit the model (scores then not comparable)."
)


def figure_output_option(default: str) -> F:
    """``--output FILE`` of a figure command (long only: ``-o`` is ``--option`` everywhere)."""
    return click.option(
        "--output", type=click.Path(dir_okay=False, path_type=str), default=default,
        help=with_default("Figure file: PNG, or SVG / PDF when the name ends in .svg / .pdf.", default),
    )
num_workers_option = click.option(
    "--num-workers", type=click.IntRange(min=0), default=None,
    help=with_default("DataLoader workers decoding image files.", "one per CPU, at most 8"),
)

#: attacks autocast the backbone in bf16 (PGD needs only the gradient's sign); training runs
#: loss-scaled fp16 on CUDA (bf16 on the CPU): the same flag, a different mechanism
_SPEED_HELP: dict[str, dict[str, str]] = {
    "attack": {
        "amp": "bf16 autocast of the backbone (speed; metrics move slightly, docs/performance.md).",
        "channels_last": "channels-last memory layout (speed, for 224x224 backbones on a GPU).",
        "compile": "torch.compile the backbone (speed on a GPU; the first batch compiles).",
    },
    "training": {
        "amp": "Mixed precision (fp16 on CUDA, bf16 on CPU); speed, metrics move slightly.",
        "compile": "torch.compile the backbone (speed on a GPU; the first steps compile).",
    },
}
#: command parameter -> RuntimeOptions field
RUNTIME_PARAMS: dict[str, str] = {
    "device": "device", "batch_size": "batch_size", "num_workers": "num_workers",
    "amp": "amp", "channels_last": "channels_last", "compile_": "compile",
}


def runtime_options(batch_help: str | None = None, *, workers: bool = False, speed: str | None = None) -> F:
    """The runtime options of a command, declared here once and handed to it as one
    ``runtime=`` :class:`~robrank.runtime.RuntimeOptions`.

    Every command gets ``-D/--device``; ``batch_help`` adds ``-b/--batch-size`` with what a
    batch is in that command (attack queries, embedded images, training pairs); ``workers``
    adds ``--num-workers`` where image files are decoded; ``speed`` adds the speed flags of
    attacks (``"attack"``: ``--amp``, ``--channels-last``, ``--compile``) or of training
    (``"training"``: ``--amp``, ``--compile``). An option not given stays out of
    ``runtime.given``, so a resumed run keeps its saved value.
    """
    options: list[F] = []
    if batch_help is not None:
        options.append(click.option("-b", "--batch-size", "batch_size", type=click.IntRange(min=1), default=None, help=batch_help))
    options.append(device_option)
    if workers:
        options.append(num_workers_option)
    if speed is not None:
        helps = _SPEED_HELP[speed]
        options.append(click.option("--amp", "amp", is_flag=True, default=None, help=helps["amp"]))
        if "channels_last" in helps:
            options.append(click.option("--channels-last", "channels_last", is_flag=True, default=None, help=helps["channels_last"]))
        options.append(click.option("--compile", "compile_", is_flag=True, default=None, help=helps["compile"]))

    def apply(command: F) -> F:
        return group(*options)(_collect_runtime(command))

    return apply


def _collect_runtime(command: F) -> F:
    """``command`` called with one ``runtime=`` value instead of the parameters of :data:`RUNTIME_PARAMS`."""
    @functools.wraps(command)
    def collect(*args: Any, **kwargs: Any) -> Any:
        given = {field: kwargs.pop(param) for param, field in RUNTIME_PARAMS.items() if param in kwargs}
        return command(*args, runtime=RuntimeOptions.of(**given), **kwargs)

    return collect  # type: ignore[return-value]


# ------------------------------------------------------------------------------- groups

#: the training settings shared by ``train`` and ``run`` (None = not given)
#: (device, batch size, workers, amp and compile come as the command's RuntimeOptions)
TRAINING_KEYS: tuple[str, ...] = (
    "dataset", "backbone", "loss", "metric", "miner", "epochs", "lr", "weight_decay", "optimizer",
    "embedding_dim", "pretrained", "weights", "freeze_bn", "seed",
    "validate_every", "val_batch_size", "data_root", "run_dir", "max_steps", "checkpoint_every", "keep_epochs",
)
DEFENSE_KEYS: tuple[str, ...] = ("eps", "alpha", "pgditer")

model_options = group(
    click.option("-C", "--config", "triple", metavar="DATASET:MODEL:LOSS", default=None,
                 help="Reference-style config; a defense's suffix on MODEL trains with it (robrank list defenses)."),
    click.option("--dataset", default=None, help="Dataset (robrank list datasets)."),
    click.option("--backbone", default=None, help="Backbone name or alias (robrank list backbones)."),
    click.option("--loss", default=None, help="Loss: a reference name or a family with --metric/--miner (robrank list losses)."),
    click.option("--metric", type=click.Choice(["C", "E", "N"]), default=None, help="Distance metric when --loss is a family name."),
    click.option("--miner", default=None, help=with_default("Triplet miner (robrank list miners).", "the loss's own")),
)

#: a model trained elsewhere instead of a run (eval, attack, swipe); cli/external_model.py turns them into a ModelSpec
external_model_group = group(
    click.option("--model", "model", metavar="SPEC", default=None,
                 help="Evaluate a model trained elsewhere instead of a run: MODULE:CALLABLE, FILE.py:CALLABLE, timm:NAME, "
                      "torchvision:NAME, zoo:NAME (robrank list models), or a TorchScript / torch.export file (docs/api.md)."),
    click.option("--weights", "weights", metavar="[SUBMODULE=]FILE", multiple=True,
                 help="state_dict for --model (.pt read with weights_only, or .safetensors); SUBMODULE=FILE loads into one "
                      "part (e.g. trunk=trunk.pth). Repeatable."),
    click.option("--weights-key", "weights_key", metavar="KEY", default=None,
                 help="The entry of the weights file that holds the state_dict (state_dict, model, ...; a/b for deeper nesting)."),
    click.option("--strip-prefix", "strip_prefix", metavar="PREFIX", default=None, help="Remove PREFIX (e.g. module.) from the weights' keys."),
    click.option("--metric", "metric", type=click.Choice(["C", "E", "N"]), default=None,
                 help="Distance the model's embeddings are ranked with (required with --model): C cosine, E Euclidean, "
                      "N Euclidean on the unit sphere."),
    click.option("--dataset", "dataset", metavar="NAME", default=None,
                 help="Evaluation data for --model (robrank list datasets); it also picks the default swipe profile."),
    click.option("--normalize", "normalize", metavar="imagenet|none|MEAN,STD", default=None,
                 help=with_default("Input normalisation inside the model, so attacks stay in [0,1] pixels", "none; timm:/torchvision: their pretrained statistics")),
    click.option("--embedding-dim", "embedding_dim", type=click.IntRange(min=0), default=None,
                 help=with_default("timm:/torchvision: replace the classifier head by a DIM-d linear embedding (0 removes it)", "keep the head")),
    click.option("--gray-to-rgb", "gray_to_rgb", is_flag=True, help="Repeat a gray image's channel three times for a 3-channel model."),
)
#: the parameter names of external_model_group, in order
EXTERNAL_MODEL_KEYS: tuple[str, ...] = (
    "model", "weights", "weights_key", "strip_prefix", "metric", "dataset", "normalize", "embedding_dim", "gray_to_rgb",
)

defense_options = group(
    click.option("--plugin", "--defense", "defense", default=None,
                 help=with_default("Adversarial-training defense (robrank list defenses).", "the plain defense: no adversarial training")),
    click.option("--eps", type=UNIT_INTERVAL, default=None, help=with_default("Defense: L-inf budget in [0,1] pixels.", "28x28: 77/255, 224x224: 8/255")),
    click.option("--alpha", type=NON_NEGATIVE, default=None, help=with_default("Defense: PGD step size.", "28x28: 3/255, 224x224: 1/255")),
    click.option("--pgditer", type=click.IntRange(min=1), default=None, help=with_default("Defense: PGD steps (1 = FGSM).", 32)),
    click.option("-o", "--option", "defense_option", type=KeyValue(), multiple=True,
                 help="A defense-specific option, repeatable (see docs/defenses.md)."),
    click.option("--ics", is_flag=True, default=None, help="Add the intra-class structure term (defenses with an ics option)."),
)

_BATCH_HELP = (
    "SPC-2 pairs per step PER PROCESS (2x that many images); with --devices N or torchrun the "
    "effective batch is batch-size x N, as in the reference."
)

schedule_options = group(
    click.option("--epochs", type=click.IntRange(min=1), default=None, help=with_default("Epochs of SPC-2 pairs.", "8 for 28x28, 75 for 224x224")),
    click.option("--lr", type=NON_NEGATIVE, default=None, help=with_default("Learning rate.", "1e-3 for 28x28, 1e-5 for 224x224")),
    click.option("--weight-decay", type=NON_NEGATIVE, default=None, help=with_default("Weight decay.", "1e-7 for 28x28, 4e-4 for 224x224")),
    click.option("--optimizer", default=None, help=with_default("torch.optim class for the backbone.", "Adam")),
    click.option("--embedding-dim", type=click.IntRange(min=1), default=None, help=with_default("Embedding size.", "the backbone's")),
    click.option("--pretrained", type=click.Choice(["imagenet", NO_WEIGHTS]), default=None,
                 help=with_default("Initial weights.", "imagenet where the backbone has them")),
    click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None,
                 help="Local file with the backbone's initial weights."),
    click.option("--freeze-bn/--no-freeze-bn", "freeze_bn", default=None,
                 help=with_default("Keep BatchNorm in eval mode.", "on for 224x224 backbones with BatchNorm, unless the defense trains BN")),
    seed_option,
)

#: how a training run is kept: validation, the run directory, resuming and checkpoints
run_dir_options = group(
    click.option("--validate-every", type=click.IntRange(min=1), default=None, help=with_default("Validate every N epochs.", "1 for 28x28, 5 for 224x224")),
    click.option("--val-batch-size", type=click.IntRange(min=1), default=None,
                 help=with_default("Batch size when embedding the test split.", "128 / 112")),
    data_root_option,
    click.option("--run-dir", type=click.Path(file_okay=False, path_type=str), default=None,
                 help=with_default("Run directory.", "runs/DATASET-BACKBONE-LOSS[-DEFENSE]-TIMESTAMP")),
    click.option("--resume", is_flag=True,
                 help="Continue the run in --run-dir (or the newest matching one under runs/); settings not passed come from it."),
    click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop after this many optimiser steps (quick checks)."),
    click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, help="Also checkpoint every N steps inside an epoch."),
    click.option("--keep-epochs", is_flag=True, default=None, help="Keep checkpoints/epoch-E.pt for every epoch besides last.pt."),
)

#: everything ``train`` and ``run`` share
training_options = group(
    model_options,
    defense_options,
    schedule_options,
    runtime_options(with_default(_BATCH_HELP, "128 for 28x28, 56 for 224x224"), workers=True, speed="training"),
    run_dir_options,
)


def training_settings(options: dict[str, Any], runtime: RuntimeOptions) -> dict[str, Any]:
    """The TrainConfig fields the user passed (no None), the runtime options given and defense options folded in."""
    values = {k: options[k] for k in TRAINING_KEYS if options.get(k) is not None}
    values.update(runtime.given_fields())
    defense_opts = {k: options[k] for k in DEFENSE_KEYS if options.get(k) is not None}
    for key, value in options.get("defense_option") or ():
        defense_opts[key] = value
    if options.get("ics"):
        defense_opts["ics"] = True
    if options.get("defense"):
        values["defense"] = options["defense"]
    if defense_opts:
        values["defense_options"] = defense_opts
    return values


def apply_triple(triple: str | None, values: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """``values`` with ``-C DATASET:MODEL:LOSS`` folded in (a conflict with --dataset/... is an error)."""
    if not triple:
        return values
    from ..training.config import parse_triple  # lazy: keeps robrank --help torch-free

    for key in ("dataset", "backbone", "loss"):
        if values.get(key):
            raise ConfigError(f"give either -C DATASET:MODEL:LOSS or --{key}, not both")
    parsed = parse_triple(triple, registry)
    values = {**values, "dataset": parsed.dataset, "backbone": parsed.backbone, "loss": parsed.loss}
    from ..training.config import plain_defense  # lazy: keeps robrank --help torch-free

    if parsed.defense != plain_defense(registry):
        given = values.get("defense")
        if given and given != parsed.defense:
            model = triple.split(":")[1]
            raise ConfigError(f"-C model {model!r} already implies defense {parsed.defense!r}; drop --plugin/--defense")
        values["defense"] = parsed.defense
        values["defense_options"] = {**parsed.defense_options, **(values.get("defense_options") or {})}
    return values


def echo_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, default=str))


__all__ = [
    "with_default",
    "group",
    "KeyValue",
    "parse_key_value",
    "SuggestingChoice",
    "suggest",
    "data_root_option",
    "json_option",
    "quiet_option",
    "figure_output_option",
    "no_progress_option",
    "output_group",
    "seed_option",
    "semantics_option",
    "max_batches_option",
    "max_queries_option",
    "profile_option",
    "model_options",
    "external_model_group",
    "EXTERNAL_MODEL_KEYS",
    "defense_options",
    "schedule_options",
    "runtime_options",
    "run_dir_options",
    "training_options",
    "training_settings",
    "apply_triple",
    "RUNTIME_PARAMS",
    "echo_json",
    "TRAINING_KEYS",
    "DEFENSE_KEYS",
]
