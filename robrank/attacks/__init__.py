"""Ranking attacks: the Attack base class (PGD, selection, summaries), the spec grammar, the runner.

Public surface::

    parse_spec("CA:pm=+:W=1:eps=0.30196:alpha=0.011764:pgditer=32") -> AttackSpec
    Gallery.compute(model, dataset, batch_size, device) -> Gallery
    run_attack(model, dataset, spec, ...) -> AttackResult
    merge_results([AttackResult, ...]) -> AttackResult

Concrete attacks live in plugins (the bundled ones in ``robrank_plugins.attacks``).
"""
from .base import SEMANTICS, Attack, BatchContext, BatchOutcome, Surrogate, attack_mode
from .gallery import Gallery, device_dataset, embed, iter_images
from .runner import AttackResult, FastEmbedding, accelerate, auto_batch_size, build_attack, check_task, merge_results, run_attack
from .spec import DEFAULT_ALPHA, DEFAULT_EPS, DEFAULT_PGDITER, AttackSpec, parse_spec

__all__ = [
    "Attack",
    "AttackResult",
    "AttackSpec",
    "BatchContext",
    "BatchOutcome",
    "DEFAULT_ALPHA",
    "DEFAULT_EPS",
    "DEFAULT_PGDITER",
    "FastEmbedding",
    "Gallery",
    "SEMANTICS",
    "Surrogate",
    "accelerate",
    "attack_mode",
    "auto_batch_size",
    "build_attack",
    "check_task",
    "device_dataset",
    "embed",
    "iter_images",
    "merge_results",
    "parse_spec",
    "run_attack",
]
