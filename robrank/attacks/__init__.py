"""Ranking attacks: the Attack base class (PGD, selection, summaries), the spec grammar, the runner.

Public surface (the names in ``__all__``)::

    parse_spec("CA:pm=+:W=1:eps=0.30196:alpha=0.011764:pgditer=32") -> AttackSpec
    Gallery.compute(model, dataset, batch_size, device) -> Gallery
    run_attack(model, dataset, spec, AttackOptions(...)) -> AttackResult
    merge_results([AttackResult, ...]) -> AttackResult

Plugin authors import from :mod:`robrank.plugin_api` instead. The other names imported
here (``accelerate``, ``auto_batch_size``, ``FastEmbedding``, ...) are robrank's own
plumbing, kept importable for its modules and not exported. Concrete attacks live in
plugins (the bundled ones in ``robrank_plugins.attacks``).
"""
from ..models.modes import attack_mode
from .base import DEFAULT_ALPHA, DEFAULT_EPS, DEFAULT_PGDITER, PM, Attack, BatchContext, BatchOutcome, Selection, Surrogate
from .gallery import Gallery, device_dataset, iter_images
from .runner import (
    AttackOptions,
    AttackResult,
    FastEmbedding,
    accelerate,
    auto_batch_size,
    build_attack,
    check_task,
    dataset_attack_defaults,
    merge_results,
    run_attack,
)
from .spec import AttackSpec, parse_spec

__all__ = [
    "Attack",
    "AttackOptions",
    "AttackResult",
    "AttackSpec",
    "BatchContext",
    "BatchOutcome",
    "DEFAULT_ALPHA",
    "DEFAULT_EPS",
    "DEFAULT_PGDITER",
    "Gallery",
    "PM",
    "Selection",
    "Surrogate",
    "build_attack",
    "merge_results",
    "parse_spec",
    "run_attack",
]
