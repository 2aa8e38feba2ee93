"""Every knob of a training run, its per-family defaults, and the reference's config triples.

A :class:`TrainConfig` starts with only what the user said (``None`` = "use the default");
:func:`resolve_config` fills the rest from the reference according to the backbone's image
size family and records the result in the run's ``config.json``, so a run directory always
says exactly how it was trained.

Batch semantics: ``batch_size`` counts SPC-2 *pairs* per process (each step sees
2 x batch_size images per process), as in the reference; under ``--devices N`` or torchrun
the effective batch is batch_size x world size pairs. A classifier (a backbone with
``task="classification"`` and a loss with ``batch="classification"``, e.g. ``ce``) trains
on plain batches of ``batch_size`` images, with the backbone record's ``train_defaults``
(the reference's ``configs_classify``) taking precedence over the family defaults.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any
import torch

from ..errors import ConfigError
from ..plugins import Registry
from ..records import NO_WEIGHTS, SIZE_224, SIZE_28, TASK_CLASSIFICATION, TASK_RETRIEVAL, size_family
from ..losses import resolve_loss
from ..runtime import default_num_workers as workers

#: defaults per image-size family (the reference: rc2f2 / __ranking_model_224x224_icml, p* losses)
FAMILY_DEFAULTS: dict[int, dict[str, Any]] = {
    SIZE_28: {
        "epochs": 8,
        "batch_size": 128,
        "lr": 1e-3,
        "weight_decay": 1e-7,
        "freeze_bn": False,
        "validate_every": 1,
        "val_batch_size": 128,
    },
    SIZE_224: {
        "epochs": 75,
        "batch_size": 56,
        "lr": 1e-5,
        "weight_decay": 4e-4,
        "freeze_bn": True,
        "validate_every": 5,
        "val_batch_size": 112,
    },
}

#: the reference's optimizer for every ranking model (MetricBase: ``config.optimizer or 'Adam'``)
DEFAULT_OPTIMIZER = "Adam"

#: knobs that may change when a run is resumed (they do not change what is learnt)
RESUMABLE_KNOBS: frozenset[str] = frozenset(
    {"epochs", "max_steps", "device", "num_workers", "validate_every", "val_batch_size", "data_root", "run_dir",
     "checkpoint_every", "keep_epochs", "compile"}
)


@dataclass
class TrainConfig:
    """A training run. ``None`` fields take the backbone family's default in :func:`resolve_config`."""

    dataset: str
    backbone: str
    loss: str
    metric: str | None = None
    miner: str | None = None
    defense: str | None = None  # None: the registry's plain (no-op) defense
    defense_options: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    batch_size: int | None = None  # SPC-2 pairs per process; effective = batch_size x world size
    lr: float | None = None
    weight_decay: float | None = None
    optimizer: str | None = None  # a torch.optim class name; None = Adam, or the backbone's own recipe
    momentum: float | None = None  # for optimizers that take one (SGD); None = the optimizer's default
    milestones: list[int] | None = None  # epochs after which lr is multiplied by lr_gamma (MultiStepLR)
    lr_gamma: float | None = None
    embedding_dim: int | None = None
    pretrained: str | None = None  # "imagenet" or "none"; None = imagenet when the backbone has it
    weights: str | None = None
    freeze_bn: bool | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    compile: bool = False  # torch.compile the backbone (speed only; docs/performance.md)
    num_workers: int | None = None
    validate_every: int | None = None
    val_batch_size: int | None = None
    data_root: str | None = None
    max_steps: int | None = None
    run_dir: str | None = None
    checkpoint_every: int | None = None  # also checkpoint every N steps inside an epoch
    keep_epochs: bool = False  # keep checkpoints/epoch-<E>.pt besides last.pt

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(payload) - known)
        if unknown:
            raise ConfigError(f"unknown training config keys {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**payload)


@dataclass(frozen=True)
class Triple:
    """What ``-C dataset:model:loss`` means once the reference's model suffixes are undone."""

    dataset: str
    backbone: str
    loss: str
    defense: str = ""
    defense_options: dict[str, Any] = field(default_factory=dict)


def parse_triple(text: str, registry: Registry) -> Triple:
    """Parse ``mnist:c2f2:ptripletN`` or the reference's ``mnist:rc2f2p:ptripletN``.

    The model part is a backbone name or alias; when no backbone has that exact name and it
    ends in a suffix some defense declares (:attr:`DefenseRecord.suffixes`), the suffix
    becomes that defense and its options. Without a suffix the defense is the registry's
    plain one, so the triple always names what will be trained.
    """
    parts = text.split(":")
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise ConfigError(f"config {text!r} is not DATASET:MODEL:LOSS (three registered names, see robrank list)")
    dataset, model, loss = (p.strip() for p in parts)
    if ("backbones", model) in registry:
        return Triple(dataset, model, loss, plain_defense(registry))
    suffixes = sorted(
        ((suffix, c.record.name, options) for c in registry.components("defenses") for suffix, options in c.record.suffixes.items()),
        key=lambda item: -len(item[0]),
    )
    for suffix, defense, options in suffixes:
        stem = model[: -len(suffix)]
        if model.endswith(suffix) and stem and ("backbones", stem) in registry:
            return Triple(dataset, stem, loss, defense, dict(options))
    registry.get("backbones", model)  # raises the unknown-name error listing the backbones
    raise AssertionError("unreachable")


def plain_defense(registry: Registry) -> str:
    """The name of the registered plain (no-op) defense: what a run without a defense trains with."""
    for component in registry.components("defenses"):
        if component.record.plain:
            return component.name
    raise ConfigError("no defense given and no installed plugin registers a plain (no-op) defense; pass --defense (robrank list defenses)")


def default_num_workers() -> int:
    return workers()


def resolve_config(config: TrainConfig, registry: Registry) -> TrainConfig:
    """A copy of ``config`` with every default filled in and every name checked.

    Component names are canonicalised (``rc2f2`` -> the backbone's registered name) so the
    run's config.json names what was actually built.
    """
    dataset = registry.component("datasets", config.dataset).record
    backbone = registry.component("backbones", config.backbone).record
    choice = resolve_loss(config.loss, metric=config.metric, miner=config.miner or None, registry=registry)
    if backbone.task == TASK_CLASSIFICATION:
        if choice.record.batch != TASK_CLASSIFICATION:
            raise ConfigError(
                f"backbone {backbone.name!r} is a classifier; train it with a classification loss "
                f"({', '.join(_classification_losses(registry)) or 'none registered'}), not {config.loss!r}"
            )
        if config.defense and not registry.get("defenses", config.defense).plain:
            raise ConfigError(f"adversarial training of classifiers is not implemented (as in the reference); drop --defense {config.defense}")
    elif backbone.task != TASK_RETRIEVAL:
        raise ConfigError(f"backbone {backbone.name!r} is a {backbone.task} model; pick an embedding backbone (robrank list backbones)")
    elif choice.record.batch != "SPC-2":
        hint = "pick a classifier backbone (robrank list backbones)" if choice.record.batch == TASK_CLASSIFICATION else "use a p* loss: robrank list losses shows each loss's batch layout"
        raise ConfigError(f"loss {config.loss!r} needs {choice.record.batch} batches; robrank train feeds SPC-2 pair batches to {backbone.name!r} ({hint})")
    if choice.record.batch not in dataset.kinds:
        raise ConfigError(
            f"dataset {dataset.name!r} offers {', '.join(dataset.kinds)} batches, not the {choice.record.batch} "
            f"batches loss {choice.record.name!r} trains on; pick another dataset (robrank list datasets)"
        )
    if dataset.image_size != backbone.input_size or dataset.channels != backbone.channels:
        raise ConfigError(
            f"dataset {dataset.name!r} has {dataset.channels}x{dataset.image_size}x{dataset.image_size} images but backbone "
            f"{backbone.name!r} takes {backbone.channels}x{backbone.input_size}x{backbone.input_size}; pick a matching pair"
        )
    family = size_family(backbone.input_size)
    defaults = {**FAMILY_DEFAULTS[family], "optimizer": DEFAULT_OPTIMIZER, "momentum": None, "milestones": None, "lr_gamma": None}
    own = dict(backbone.train_defaults)
    unknown = sorted(set(own) - set(defaults))
    if unknown:
        raise ConfigError(f"backbone {backbone.name!r} declares unknown train_defaults {', '.join(unknown)}")
    values = config.to_dict()
    values["dataset"] = dataset.name
    values["backbone"] = backbone.name
    values["metric"] = choice.metric
    values["miner"] = choice.miner
    if values["freeze_bn"] and not backbone.has_batchnorm:
        raise ConfigError(f"backbone {backbone.name!r} has no BatchNorm layers to freeze; drop --freeze-bn")
    for key, default in defaults.items():
        if values[key] is None:
            values[key] = own.get(key, default)
    values["freeze_bn"] = bool(values["freeze_bn"]) and backbone.has_batchnorm
    if values["milestones"] is not None:
        values["milestones"] = sorted(int(m) for m in values["milestones"])
        if values["lr_gamma"] is None:
            values["lr_gamma"] = 0.1
    if values["embedding_dim"] is None:
        values["embedding_dim"] = backbone.default_embedding_dim
    if values["pretrained"] is None:
        values["pretrained"] = "imagenet" if "imagenet" in backbone.pretrained else NO_WEIGHTS
    if values["pretrained"] != NO_WEIGHTS and values["pretrained"] not in backbone.pretrained:
        offered = ", ".join(backbone.pretrained) or "no weights"
        raise ConfigError(f"backbone {backbone.name!r} has no {values['pretrained']!r} weights (offers: {offered}); use --pretrained {NO_WEIGHTS}")
    if values["num_workers"] is None:
        values["num_workers"] = default_num_workers()
    defense = registry.get("defenses", values["defense"] or plain_defense(registry))
    if not defense.plain:
        given = values["defense_options"] or {}
        declared = [p.name for p in defense.params]
        unknown = sorted(set(given) - set(declared)) if declared else []
        if unknown:
            raise ConfigError(
                f"defense {defense.name!r} has no option {', '.join(map(repr, unknown))}; its options are: {', '.join(declared)}"
            )
        values["defense_options"] = {**defense.defaults_for(backbone.input_size), **given}
    elif values["defense_options"]:
        given = ", ".join(sorted(values["defense_options"]))
        raise ConfigError(
            f"options {given} need a defense but no defense was given; add --defense NAME (robrank list defenses)"
        )
    values["defense"] = defense.name
    for key in ("epochs", "batch_size", "validate_every", "val_batch_size"):
        if int(values[key]) < 1:
            raise ConfigError(f"{key.replace('_', '-')} must be at least 1, got {values[key]}")
    for key in ("max_steps", "checkpoint_every"):
        if values[key] is not None and int(values[key]) < 1:
            raise ConfigError(f"{key.replace('_', '-')} must be at least 1, got {values[key]}")
    if values["lr"] <= 0:
        raise ConfigError(f"lr must be positive, got {values['lr']}")

    if not hasattr(torch.optim, values["optimizer"]):
        raise ConfigError(f"unknown optimizer {values['optimizer']!r}; use a torch.optim class name such as Adam, AdamW or SGD")
    return TrainConfig(**values)


def _classification_losses(registry: Registry) -> list[str]:
    return [c.record.name for c in registry.components("losses") if c.record.batch == TASK_CLASSIFICATION]


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """The lr of epoch ``epoch`` (0-based): ``lr`` times ``lr_gamma`` per milestone passed (MultiStepLR)."""
    passed = sum(1 for m in (config.milestones or ()) if epoch >= int(m))
    return float(config.lr) * float(config.lr_gamma if config.lr_gamma is not None else 0.1) ** passed


__all__ = [
    "TrainConfig",
    "Triple",
    "learning_rate",
    "parse_triple",
    "resolve_config",
    "FAMILY_DEFAULTS",
    "plain_defense",
    "RESUMABLE_KNOBS",
]
