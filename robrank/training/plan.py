"""One plan per run: the configuration resolved once, checked once, and handed down.

``robrank train``, ``robrank run`` and the library's :func:`robrank.training.train` all turn
what the user said (CLI options or a :class:`~robrank.training.TrainConfig`), what an
existing run directory saved (its ``config.json``) and what the registry knows into one
:class:`RunPlan`. Everything below (the training engine, the swipe, the report) reads the
plan and decides nothing again: names are canonical, defaults filled in, the defense built
and checked against the loss, the run directory chosen.

Resuming is part of planning. A setting the user does not pass again comes from the saved
plan (epochs, swipe profile, batch limits, seed, semantics); a setting passed again that
differs from the saved one is a one-line error naming both values, unless it is one of
the runtime knobs of :data:`TRAIN_RUNTIME_KNOBS` / :data:`SWIPE_RUNTIME_KNOBS`, which change
how fast or where a run goes, not what it learns or measures.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.loading import locate
from ..errors import CheckpointError, ConfigError
from ..losses import resolve_loss
from ..plugins import Registry
from ..runtime import device_name
from ..semantics import REFERENCE
from ..swipe.runner import check_profile_fits, profile_for_dataset
from . import rundir
from .config import RESUMABLE_KNOBS, TrainConfig, plain_defense, resolve_config
from .rundir import CHECKPOINT_DIR, LAST

#: training settings a resume may change: where and how fast it runs, and how far it goes
TRAIN_RUNTIME_KNOBS: frozenset[str] = RESUMABLE_KNOBS
#: swipe settings a resume may change (the batch size is not one: the swipe file records it,
#: since the attacks' batches decide their random selections)
SWIPE_RUNTIME_KNOBS: frozenset[str] = frozenset({"device"})
#: the section of config.json that says what ``robrank run`` swipes and which defaults it chose
RUN_SECTION = "run"
DEFAULT_SEMANTICS = REFERENCE


@dataclass(frozen=True)
class SwipePlan:
    """What ``robrank run`` swipes once training is done."""

    profile: str
    batch_size: int | None = None
    max_batches: int | None = None
    max_queries: int | None = None
    semantics: str = DEFAULT_SEMANTICS
    seed: int = 0
    device: str | None = None  # None/auto: CUDA when present, decided when the swipe starts

    @property
    def file_name(self) -> str:
        suffix = "" if self.semantics == DEFAULT_SEMANTICS else f"-{self.semantics}"
        return f"swipe-{self.profile}{suffix}.json"

    def runner_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`robrank.swipe.swipe` this plan fixes (device resolved now)."""
        return {
            "device": device_name(self.device),
            "batch_size": self.batch_size,
            "max_batches": self.max_batches,
            "max_queries": self.max_queries,
            "seed": self.seed,
            "semantics": self.semantics,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "max_batches": self.max_batches,
            "max_queries": self.max_queries,
            "semantics": self.semantics,
            "seed": self.seed,
            "device": self.device,
        }


@dataclass
class RunPlan:
    """A training run resolved once: config, components, run directory, and what follows it.

    ``config`` is resolved (every default filled, names canonical, ``run_dir`` set);
    ``resume`` says training continues from the run directory's last checkpoint; ``swipe``
    is set for ``robrank run``; ``chosen`` lists the defaults ``robrank run`` picked.
    """

    config: TrainConfig
    registry: Registry
    dataset: Any  # DatasetRecord
    backbone: Any  # BackboneRecord
    loss: Any  # LossChoice
    defense: Any  # Defense, built and checked against the loss
    resume: bool = False
    swipe: SwipePlan | None = None
    chosen: dict[str, Any] = field(default_factory=dict)
    command: str = "robrank train"

    @property
    def run_dir(self) -> Path:
        return Path(str(self.config.run_dir))

    def run_section(self) -> dict[str, Any] | None:
        """The ``run`` section of config.json (None for a plain training run)."""
        if self.swipe is None:
            return None
        return {
            "command": self.command,
            "defaults_chosen": dict(self.chosen),
            "quickstart": "dataset" in self.chosen,
            "profile": self.swipe.profile,
            "swipe": self.swipe.as_dict(),
            "swipe_file": self.swipe.file_name,
        }

    def with_config(self, config: TrainConfig) -> RunPlan:
        return dataclasses.replace(self, config=config)


# ------------------------------------------------------------------------------- building


def build_plan(
    config: TrainConfig, registry: Registry, *, build_defense: bool = True, resolved: bool = False, **extra: Any
) -> RunPlan:
    """The plan of an already placed config: resolve it and build and check its components.

    Touches no file; :func:`plan_training` decides the run directory first. Commands that
    only read a trained model (eval) pass ``build_defense=False``: the defense that trained
    it need not be installed to measure it. ``resolved=True`` says ``config`` comes from
    :func:`resolve_config` already (the planners resolve once and place the run first).
    """
    if not resolved:
        config = resolve_config(config, registry)
    dataset = registry.get("datasets", config.dataset)
    backbone = registry.get("backbones", config.backbone)
    choice = resolve_loss(config.loss, metric=config.metric, miner=config.miner or None, registry=registry)
    defense = None
    if build_defense:
        defense = registry.create("defenses", str(config.defense), **dict(config.defense_options))
        defense.bind(registry)
        defense.check(choice.record, choice.metric)
    return RunPlan(config=config, registry=registry, dataset=dataset, backbone=backbone, loss=choice, defense=defense, **extra)


def given_settings(config: TrainConfig) -> dict[str, Any]:
    """The fields of ``config`` the caller set: not None and not the field's default."""
    given: dict[str, Any] = {}
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if value is None:
            continue
        if item.default is not dataclasses.MISSING and value == item.default:
            continue
        if item.default_factory is not dataclasses.MISSING and value == item.default_factory():  # type: ignore[misc]
            continue
        given[item.name] = value
    return given


def plan_training(
    config: TrainConfig,
    *,
    resume: bool = False,
    registry: Registry,
    given: Mapping[str, Any] | None = None,
    command: str = "robrank train",
) -> RunPlan:
    """The plan of ``robrank train`` (and of the library's ``train(config)``).

    ``given`` are the settings the user passed (default: the fields of ``config`` that are
    not at their default); on ``resume`` everything else comes from the saved run.
    """
    given = dict(given_settings(config) if given is None else given)
    if not resume:
        resolved = resolve_config(config, registry)
        run_dir = Path(resolved.run_dir) if resolved.run_dir else rundir.new_run_dir(resolved, registry=registry)
        if rundir.has_checkpoint(run_dir):
            raise ConfigError(f"run directory {run_dir} already holds a run; pass --resume to continue it or choose another --run-dir")
        return build_plan(dataclasses.replace(resolved, run_dir=str(run_dir)), registry, resolved=True, command=command)
    run_dir = _resume_dir(config, registry)
    if not rundir.has_checkpoint(run_dir):
        raise CheckpointError(f"cannot resume {run_dir}: it has no {rundir.CHECKPOINT_DIR}/{rundir.LAST} yet; start it again without --resume")
    saved = rundir.read_config(run_dir)
    merged = merge_saved(saved, given, registry)
    return build_plan(dataclasses.replace(merged, run_dir=str(run_dir)), registry, resolved=True, resume=True, command=command)


def _resume_dir(config: TrainConfig, registry: Registry) -> Path:
    if config.run_dir:
        run_dir = Path(config.run_dir)
        if not run_dir.is_dir():
            raise CheckpointError(_no_run(run_dir, "no such directory"))
        return run_dir
    resolved = resolve_config(config, registry)
    found = rundir.latest_run_dir(resolved, registry=registry)
    if found is None:
        raise ConfigError(f"nothing to resume: no run of {rundir.run_name(resolved, registry)} with a checkpoint under {rundir.RUNS}/; pass --run-dir")
    return found


def _no_run(run_dir: Path, why: str) -> str:
    return f"cannot resume {run_dir}: it has no {CHECKPOINT_DIR}/{LAST} ({why}); check the path or start a new run without --resume"


def merge_saved(saved: Mapping[str, Any], given: Mapping[str, Any], registry: Registry) -> TrainConfig:
    """The saved config with the settings passed again; a conflict outside the runtime knobs is an error."""
    given = {k: v for k, v in given.items() if v is not None and k != "run_dir"}
    merged = {**saved, **given}
    if "defense_options" in given:
        merged["defense_options"] = {**(saved.get("defense_options") or {}), **given["defense_options"]}
    resolved = resolve_config(TrainConfig.from_dict(merged), registry).to_dict()
    conflicts = [
        (key, given[key] if key in given else resolved[key], saved[key])
        for key in resolved
        if key not in TRAIN_RUNTIME_KNOBS and key in saved and resolved[key] != saved[key]
    ]
    if conflicts:
        raise ConfigError(
            "cannot resume: the run was trained with different settings: "
            + "; ".join(f"--{k.replace('_', '-')} {now!r} but the run has {was!r}" for k, now, was in conflicts[:4])
            + "; drop those options to continue it, or start a new run"
        )
    return TrainConfig.from_dict(resolved)


def saved_plan(saved: Mapping[str, Any], runtime: Mapping[str, Any] | None = None, *, registry: Registry) -> RunPlan:
    """The plan a trained model was trained with (its saved config), for commands that read it.

    ``runtime`` may set runtime knobs only (device, workers, validation batch, data root);
    keys the current TrainConfig does not know (a run from another version) are ignored.
    """
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in saved.items() if k in known}
    fixed = sorted(k for k, v in (runtime or {}).items() if v is not None and k not in TRAIN_RUNTIME_KNOBS)
    if fixed:
        raise ConfigError(f"{', '.join(fixed)} cannot change for a trained model; only runtime settings can")
    values.update({k: v for k, v in (runtime or {}).items() if v is not None})
    if values.get("defense") and ("defenses", values["defense"]) not in registry:
        values["defense"], values["defense_options"] = None, {}  # measuring a model needs no defense plugin
    return build_plan(TrainConfig.from_dict(values), registry, build_defense=False, resume=True, command="robrank eval")


# ---------------------------------------------------------------------------- robrank run


def plan_run(
    given: Mapping[str, Any],
    swipe: Mapping[str, Any],
    *,
    resume: bool = False,
    registry: Registry,
) -> RunPlan:
    """The plan of ``robrank run``: training plus the swipe, with the dataset's defaults.

    ``given`` are the training settings passed (``None`` = not passed), ``swipe`` the swipe
    settings (``profile``, ``batch_size``, ``max_batches``, ``semantics``, ``device``).
    Checks, before any work: names resolve, the dataset is a retrieval dataset whose files
    are present, the defense composes with the loss, and the profile exists.
    """
    given = {k: v for k, v in given.items() if v is not None}
    swipe = {k: v for k, v in swipe.items() if v is not None}
    if resume:
        run_dir = Path(given["run_dir"]) if given.get("run_dir") else None
        if run_dir is None:
            config, _ = _run_defaults(given, registry)
            run_dir = _resume_dir(config, registry)
        elif not (run_dir / rundir.CONFIG_FILE).is_file():
            what = "no such directory" if not run_dir.exists() else f"not a robrank run directory, no {rundir.CONFIG_FILE}"
            raise CheckpointError(_no_run(run_dir, what))
        payload = rundir.read_payload(run_dir)
        merged = merge_saved(rundir.config_of(payload, run_dir), given, registry)
        section = payload.get(RUN_SECTION) or {}
        swipe_plan = _merge_swipe(section, swipe, merged, registry)
        chosen = dict(section.get("defaults_chosen") or {})
        config = dataclasses.replace(merged, run_dir=str(run_dir))
        plan = build_plan(config, registry, resolved=True, resume=rundir.has_checkpoint(run_dir), swipe=swipe_plan, chosen=chosen,
                          command="robrank run")
    else:
        config, chosen = _run_defaults(given, registry)
        resolved = resolve_config(config, registry)
        run_dir = Path(resolved.run_dir) if resolved.run_dir else rundir.new_run_dir(resolved, registry=registry)
        if rundir.has_checkpoint(run_dir):
            raise ConfigError(f"run directory {run_dir} already holds a run; pass --resume to continue it or choose another --run-dir")
        dataset = registry.get("datasets", resolved.dataset)
        profile_record = registry.get("profiles", swipe.get("profile") or _dataset_profile(dataset, registry))
        profile = profile_record.name
        if not swipe.get("force"):  # before training, not after it
            check_profile_fits(profile_record, dataset.image_size, dataset.name, registry=registry)
        swipe_plan = SwipePlan(
            profile=profile,
            batch_size=swipe.get("batch_size"),
            max_batches=swipe.get("max_batches"),
            max_queries=swipe.get("max_queries"),
            semantics=swipe.get("semantics", DEFAULT_SEMANTICS),
            seed=resolved.seed,
            device=swipe.get("device", resolved.device),
        )
        plan = build_plan(dataclasses.replace(resolved, run_dir=str(run_dir)), registry, resolved=True, swipe=swipe_plan, chosen=chosen,
                          command="robrank run")
    if plan.dataset.task != "retrieval":
        raise ConfigError(
            f"dataset {plan.dataset.name!r} is {plan.dataset.task}-only; robrank run measures ranking robustness "
            "on a retrieval dataset (robrank list datasets)"
        )
    backbone = registry.get("backbones", plan.config.backbone)
    if backbone.task != plan.dataset.task:
        raise ConfigError(
            f"backbone {backbone.name!r} is a {backbone.task} model; robrank run measures ranking robustness "
            "(train a classifier with robrank train and attack it with robrank attack, docs/classification.md)"
        )
    locate(plan.dataset.name, plan.config.data_root, registry=registry)  # missing files: the dataset's one-line message
    return plan


def _dataset_profile(dataset: Any, registry: Registry) -> str:
    """The dataset's swipe profile: the one it names, else the one scored profile its image size fits."""
    return profile_for_dataset(dataset, registry).name


def _run_defaults(given: dict[str, Any], registry: Registry) -> tuple[TrainConfig, dict[str, Any]]:
    """A TrainConfig of ``robrank run``'s settings, with the dataset's defaults where none was given."""
    values = dict(given)
    chosen: dict[str, Any] = {}
    if "dataset" not in values:
        quick = [c.name for c in registry.components("datasets") if c.record.quickstart]
        if not quick:
            raise ConfigError("no --dataset given and no installed dataset is marked for the quickstart; pass --dataset (robrank list datasets)")
        values["dataset"] = chosen["dataset"] = quick[0]
    record = registry.get("datasets", values["dataset"])
    values["dataset"] = record.name
    if record.task != "retrieval":
        raise ConfigError(
            f"dataset {record.name!r} is {record.task}-only; robrank run measures ranking robustness "
            "on a retrieval dataset (robrank list datasets)"
        )
    for key in ("backbone", "loss"):
        if key not in values:
            values[key] = chosen[key] = _declared_default(record, key, registry)
    if not values.get("defense"):
        if values.get("defense_options"):
            given_options = ", ".join(sorted(values["defense_options"]))
            raise ConfigError(
                f"options {given_options} need a defense but no defense was given; add --plugin NAME (robrank list defenses)"
            )
        values["defense"] = chosen["defense"] = plain_defense(registry)
    return TrainConfig.from_dict(values), chosen


def _declared_default(record: Any, key: str, registry: Registry) -> str:
    """The dataset's ``default_<key>``; a dataset that declares none borrows it from a registered
    dataset of the same image size and channels (one not marked for the quickstart first)."""
    field_name = f"default_{key}"
    if getattr(record, field_name):
        return str(getattr(record, field_name))
    alike = [
        c.record for c in registry.components("datasets")
        if c.record.image_size == record.image_size and c.record.channels == record.channels and getattr(c.record, field_name)
    ]
    alike.sort(key=lambda r: r.quickstart)
    if not alike:
        raise ConfigError(f"dataset {record.name!r} declares no default {key} and no dataset of its size does; pass --{key}")
    return str(getattr(alike[0], field_name))


def _merge_swipe(section: Mapping[str, Any], swipe: Mapping[str, Any], config: TrainConfig, registry: Registry) -> SwipePlan:
    """The saved swipe settings with those passed again (a conflict outside the speed knobs is an error)."""
    saved = dict(section.get("swipe") or {})
    if section.get("profile"):
        saved["profile"] = section["profile"]
    if "profile" in swipe:
        swipe = {**swipe, "profile": registry.get("profiles", swipe["profile"]).name}
    conflicts = [
        (k, v, saved[k]) for k, v in swipe.items() if k not in SWIPE_RUNTIME_KNOBS and saved.get(k) is not None and saved[k] != v
    ]
    if conflicts:
        flags = {"profile": "--profile", "max_batches": "--max-batches", "max_queries": "--max-queries", "semantics": "--semantics",
                 "batch_size": "--swipe-batch-size"}
        raise ConfigError(
            "cannot resume: the run's swipe was planned with different settings: "
            + "; ".join(f"{flags.get(k, '--' + k)} {now!r} but the run has {was!r}" for k, now, was in conflicts)
            + "; drop those options to continue it, or start a new run"
        )
    values = {**saved, **swipe}
    profile = values.get("profile") or _dataset_profile(registry.get("datasets", config.dataset), registry)
    return SwipePlan(
        profile=registry.get("profiles", profile).name,
        batch_size=values.get("batch_size"),
        max_batches=values.get("max_batches"),
        max_queries=values.get("max_queries"),
        semantics=values.get("semantics") or DEFAULT_SEMANTICS,
        seed=config.seed,
        device=swipe.get("device") or config.device,  # a runtime knob: this machine's, not the saved one
    )


__all__ = [
    "RunPlan",
    "SwipePlan",
    "build_plan",
    "saved_plan",
    "plan_training",
    "plan_run",
    "merge_saved",
    "given_settings",
    "TRAIN_RUNTIME_KNOBS",
    "SWIPE_RUNTIME_KNOBS",
    "RUN_SECTION",
    "DEFAULT_SEMANTICS",
]
