"""Everything a robrank plugin needs, from one module: ``from robrank.plugin_api import ...``.

A dataset, backbone, loss, miner, attack, defense, profile, executor or command plugin imports from
here and nowhere else in ``robrank`` (docs/plugins.md documents every name). The bundled
plugins in ``robrank_plugins`` are written the same way, and a test keeps them so.

Stability promise: the names in :data:`__all__` are the plugin API. They keep their meaning
and signature across minor versions of robrank; a change that breaks them waits for a major
version and is announced in the changelog first. Anything else under ``robrank.*`` is
internal and may change in any release, so a plugin that imports it may break without notice.

Importing this module is cheap: it does not import torch. The registration names (the
records, :data:`hookimpl`, :class:`Param`, the errors, the summary and scoring helpers) and
the declaration bases (``AttackDeclaration``, ``DefenseDeclaration`` ...: what an attack's
fields or a defense's options are) are plain Python; the implementation bases (``Attack``,
``Defense``, ``Criterion``, the data sources ...) import torch and are loaded on first
access. A plugin's entry-point module that only registers records (with lazy
``"module:attr"`` factories and declarations, see docs/plugins.md) therefore keeps
``robrank --help`` and ``robrank list`` fast.
"""
from __future__ import annotations

import importlib
from typing import Any

from .attacks.declaration import PCTL, AttackDeclaration, CandidateAttackDeclaration
from .attacks.defaults import DEFAULT_ALPHA, DEFAULT_EPS, DEFAULT_PGDITER, PM
from .defenses.declaration import AdversarialDefenseDeclaration, DefenseDeclaration
from .defenses.settings import METHODS
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    NonFiniteError,
    PluginError,
    RobrankError,
    SpecError,
    StorageError,
    UnknownNameError,
)
from .hookspecs import hookimpl
from .params import REQUIRED, Param, ParamError
from .plugins import Registry, get_registry
from .records import (
    NO_WEIGHTS,
    SIZE_28,
    SIZE_224,
    TASK_CLASSIFICATION,
    TASK_RETRIEVAL,
    AttackRecord,
    BackboneRecord,
    DatasetRecord,
    DefenseRecord,
    ExecutorRecord,
    LossRecord,
    MinerRecord,
    ModelRecord,
    ProfileRecord,
    reference_aliases,
    size_family,
)
from .scoring import Column, IncompleteScoresError, Score
from .semantics import REFERENCE_PAIRWISE_EPS
from .summaries import EMBSHIFT, FRACTION, HIGHER, LOWER, PERCENT, QUERIES, WITH_PM, MetricDisplay

#: name -> the internal module it lives in; loaded (with torch) on first access
_LAZY: dict[str, str] = {
    # attacks: the base class, its typed batch context, selection, distances, metrics
    **dict.fromkeys(("Attack", "BatchContext", "Selection", "Surrogate"), "robrank.attacks.base"),
    "CandidateAttack": "robrank.attacks.candidate",
    "Gallery": "robrank.attacks.gallery",
    "AttackSpec": "robrank.attacks.spec",
    "parse_spec": "robrank.attacks.spec",
    **dict.fromkeys(("AttackResult", "build_attack", "run_attack"), "robrank.attacks.runner"),
    "load_run": "robrank.models.checkpoint",
    "pgd_minimize": "robrank.attacks.pgd",
    **dict.fromkeys(
        ("STREAM_CANDIDATES", "STREAM_PERMUTATION", "STREAM_QUERIES", "STREAM_TARGET",
         "nearest_excluding_self", "permutation", "randint", "top_fraction"),
        "robrank.attacks.selection",
    ),
    **dict.fromkeys(("kth_margin", "label_margin", "soft_rank", "temperature"), "robrank.attacks.surrogates"),
    **dict.fromkeys(
        ("candidate_prank", "first_match_rank", "query_prank", "recall_at", "retained", "top1_label_match"),
        "robrank.attacks.metrics",
    ),
    **dict.fromkeys(("embed_for_metric", "paired", "pairwise"), "robrank.distances"),
    # losses and miners
    **dict.fromkeys(
        ("Criterion", "TripletCriterion", "Miner", "Triplets", "LOSS_GRAM_FLOOR", "MINER_GRAM_FLOOR", "active_mean",
         "check_spc2", "choose_in_rows", "mean_or_zero", "random_uniform", "spc2_anchors_positives"),
        "robrank.losses.base",
    ),
    # defenses: the bases, the inner attacks they run, miners and hardness
    **dict.fromkeys(
        ("Defense", "AdversarialDefense", "NoDefense", "TrainingProgress", "check_family", "check_metric_in"),
        "robrank.defenses.base",
    ),
    **dict.fromkeys(
        ("collapse_pairs", "embedding_shift", "embedding_shift_distance", "inner_eval", "pairwise_eps_option"),
        "robrank.defenses.inner",
    ),
    **dict.fromkeys(("build_miner", "miner_name", "with_margin"), "robrank.defenses.mining"),
    **dict.fromkeys(("GA_INITIAL_LOSS", "alignment", "gradual_destination", "hardness"), "robrank.defenses.hardness"),
    # datasets: sources, loading, transforms, downloads
    **dict.fromkeys(("DatasetSource", "ImageDataset", "TensorImageDataset", "FileImageDataset"), "robrank.data.base"),
    **dict.fromkeys(
        ("ImageTreeSource", "SplitIndex", "IdxFile", "IdxSource", "IdxSplit", "check_split", "parse_int", "read_table",
         "torch_home"),
        "robrank.data.sources",
    ),
    **dict.fromkeys(("load_split", "dataset_record"), "robrank.data.loading"),
    **dict.fromkeys(("CropFlipTensorDataset", "reference_transform"), "robrank.data.transforms"),
    **dict.fromkeys(
        ("DEFAULT_TIMEOUT", "Digests", "download_file", "ensure_writable", "extract_tar", "md5_file"), "robrank.data.download"
    ),
    # backbones
    **dict.fromkeys(
        ("Normalize", "apply_state", "check_pretrained", "hub_checkpoint_path", "load_imagenet_state"), "robrank.models.backbone"
    ),
    # executors
    **dict.fromkeys(("threads_per_process", "usable_cpus"), "robrank.runtime"),
    **dict.fromkeys(("cell_dir", "write_status"), "robrank.sweep.state"),
    "write_json": "robrank.io",
    # commands: the runtime options every command that runs a model takes (click loads on first use)
    "runtime_options": "robrank.cli.options",
    "RuntimeOptions": "robrank.runtime",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'robrank.plugin_api' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    # registration
    "hookimpl",
    "Registry",
    "get_registry",
    "AttackRecord",
    "BackboneRecord",
    "DatasetRecord",
    "DefenseRecord",
    "ExecutorRecord",
    "LossRecord",
    "MinerRecord",
    "ModelRecord",
    "ProfileRecord",
    "NO_WEIGHTS",
    "SIZE_28",
    "SIZE_224",
    "TASK_CLASSIFICATION",
    "TASK_RETRIEVAL",
    "size_family",
    "reference_aliases",
    # typed options
    "Param",
    "ParamError",
    "REQUIRED",
    # what results show and how profiles score them
    "EMBSHIFT",
    "FRACTION",
    "PERCENT",
    "HIGHER",
    "LOWER",
    "WITH_PM",
    "QUERIES",
    "MetricDisplay",
    "Column",
    "IncompleteScoresError",
    "Score",
    # errors
    "RobrankError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "NonFiniteError",
    "PluginError",
    "SpecError",
    "StorageError",
    "UnknownNameError",
    # declarations: what an attack's fields and a defense's options are (no torch)
    "AttackDeclaration",
    "CandidateAttackDeclaration",
    "PCTL",
    "PM",
    "DEFAULT_EPS",
    "DEFAULT_ALPHA",
    "DEFAULT_PGDITER",
    "DefenseDeclaration",
    "AdversarialDefenseDeclaration",
    "METHODS",
    "REFERENCE_PAIRWISE_EPS",
    # implementations, loaded on first access
    *_LAZY,
]
