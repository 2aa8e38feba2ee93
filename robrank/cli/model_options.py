"""``--model`` and its options, shared by ``eval``, ``attack`` and ``swipe``.

A command decorated with :func:`model_options` receives ``run_or_ckpt`` as either the run
directory / checkpoint the user named or a :class:`~robrank.models.external.ModelSpec`
built from ``--model`` and friends, checked here so that a wrong combination fails before
anything loads. ``--metric`` has no default on purpose: it is how the user's model was
trained to be compared, which robrank cannot guess.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from ..errors import ConfigError

#: option name -> ModelSpec field, in the order they are shown
FIELDS: tuple[str, ...] = ("model", "weights", "weights_key", "strip_prefix", "metric", "dataset", "normalize", "embedding_dim", "gray_to_rgb")


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the ``--model`` options to a command whose first argument is ``run_or_ckpt``."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        options = {name: kwargs.pop(name) for name in FIELDS}
        kwargs["run_or_ckpt"] = resolve_target(kwargs.get("run_or_ckpt"), **options)
        return command(*args, **kwargs)

    decorators = [
        click.option("--model", "model", metavar="SPEC", default=None,
                     help="Evaluate a model trained elsewhere instead of a run: MODULE:CALLABLE, FILE.py:CALLABLE, timm:NAME, torchvision:NAME, or a TorchScript / torch.export file (docs/api.md)."),
        click.option("--weights", "weights", metavar="[SUBMODULE=]FILE", multiple=True,
                     help="state_dict for --model (.pt read with weights_only, or .safetensors); SUBMODULE=FILE loads into one part (e.g. trunk=trunk.pth). Repeatable."),
        click.option("--weights-key", "weights_key", metavar="KEY", default=None, help="The entry of the weights file that holds the state_dict (state_dict, model, ...; a/b for deeper nesting)."),
        click.option("--strip-prefix", "strip_prefix", metavar="PREFIX", default=None, help="Remove PREFIX (e.g. module.) from the weights' keys."),
        click.option("--metric", "metric", type=click.Choice(["C", "E", "N"]), default=None,
                     help="Distance the model's embeddings are ranked with (required with --model): C cosine, E Euclidean, N Euclidean on the unit sphere."),
        click.option("--dataset", "dataset", metavar="NAME", default=None, help="Evaluation data for --model (robrank list datasets); it also picks the default swipe profile."),
        click.option("--normalize", "normalize", metavar="imagenet|none|MEAN,STD", default=None,
                     help="Input normalisation inside the model, so attacks stay in [0,1] pixels [none; timm:/torchvision: their pretrained statistics]."),
        click.option("--embedding-dim", "embedding_dim", type=click.IntRange(min=0), default=None,
                     help="timm:/torchvision: replace the classifier head by a DIM-d linear embedding (0 removes it) [keep the head]."),
        click.option("--gray-to-rgb", "gray_to_rgb", is_flag=True, help="Repeat a gray image's channel three times for a 3-channel model."),
    ]
    for decorate in reversed(decorators):
        wrapper = decorate(wrapper)
    return wrapper


def resolve_target(run_or_ckpt: str | None, *, model: str | None, weights: tuple[str, ...], weights_key: str | None,
                   strip_prefix: str | None, metric: str | None, dataset: str | None, normalize: str | None,
                   embedding_dim: int | None, gray_to_rgb: bool) -> Any:
    """The run path, or the :class:`ModelSpec` of ``--model``; a wrong combination is a one-line error."""
    if model is None:
        given = [f"--{name.replace('_', '-')}" for name, value in (("weights", weights), ("weights_key", weights_key),
                 ("strip_prefix", strip_prefix), ("metric", metric), ("dataset", dataset), ("normalize", normalize),
                 ("embedding_dim", embedding_dim), ("gray_to_rgb", gray_to_rgb)) if value]
        if run_or_ckpt is None:
            raise ConfigError("name a run directory or checkpoint (RUN_OR_CKPT), or a model trained elsewhere with --model SPEC (docs/api.md)")
        if given:
            raise ConfigError(f"{given[0]} applies to --model only; a robrank run carries its own (drop {given[0]}, or pass --model)")
        return run_or_ckpt
    if run_or_ckpt is not None:
        raise ConfigError(f"give either RUN_OR_CKPT ({run_or_ckpt}) or --model, not both")
    from ..models.external import ModelSpec, parse_normalization, require_metric

    require_metric(metric)
    parse_normalization(normalize)
    if not dataset:
        raise ConfigError("--dataset is required with --model: it names the evaluation data (robrank list datasets); see docs/api.md")
    from ..data.loading import dataset_record

    record = dataset_record(dataset)  # an unknown name fails here, listing the registered ones
    return ModelSpec.create(model, weights=weights, weights_key=weights_key, strip_prefix=strip_prefix, metric=metric,
                            normalize=normalize, embedding_dim=embedding_dim, gray_to_rgb=gray_to_rgb, dataset=record.name)


__all__ = ["model_options", "resolve_target", "FIELDS"]
