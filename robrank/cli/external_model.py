"""``--model`` and its options, shared by ``eval``, ``attack`` and ``swipe``.

A command decorated with :func:`external_model_options` receives ``run_or_ckpt`` as either the run
directory / checkpoint the user named or a :class:`~robrank.models.external.ModelSpec`
built from ``--model`` and friends, checked here so that a wrong combination fails before
anything loads. ``--metric`` has no default on purpose: it is how the user's model was
trained to be compared, which robrank cannot guess.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from .options import EXTERNAL_MODEL_KEYS, external_model_group
from ..plugins import get_registry


def external_model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the ``--model`` options to a command whose first argument is ``run_or_ckpt``."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        options = {name: kwargs.pop(name) for name in EXTERNAL_MODEL_KEYS}
        kwargs["run_or_ckpt"] = resolve_target(kwargs.get("run_or_ckpt"), **options)
        return command(*args, **kwargs)

    return external_model_group(wrapper)


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
    from ..models import zoo  # lazy: keeps robrank --help torch-free
    # lazy: keeps robrank --help torch-free
    from ..models.external import ModelSpec, parse_normalization, require_metric

    registry = get_registry()
    if zoo.is_zoo(model):  # the entry's record says its metric, dataset and normalisation
        filled = zoo.complete_options(model, {"weights": weights, "weights_key": weights_key, "strip_prefix": strip_prefix,
                                              "embedding_dim": embedding_dim, "metric": metric, "dataset": dataset,
                                              "normalize": normalize, "gray_to_rgb": gray_to_rgb}, registry)
        model, metric, dataset, normalize, gray_to_rgb = (zoo.canonical(model, registry), filled["metric"], filled["dataset"],
                                                          filled["normalize"], filled["gray_to_rgb"])
    require_metric(metric)
    parse_normalization(normalize)
    if not dataset:
        raise ConfigError("--dataset is required with --model: it names the evaluation data (robrank list datasets); see docs/api.md")
    from ..data.loading import dataset_record  # lazy: keeps robrank --help torch-free

    record = dataset_record(dataset, registry=registry)  # an unknown name fails here, listing the registered ones
    return ModelSpec.create(model, weights=weights, weights_key=weights_key, strip_prefix=strip_prefix, metric=metric,
                            normalize=normalize, embedding_dim=embedding_dim, gray_to_rgb=gray_to_rgb, dataset=record.name)


__all__ = ["external_model_options", "resolve_target"]
