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
import importlib
from typing import Any

from .defaults import DEFAULT_ALPHA, DEFAULT_EPS, DEFAULT_PGDITER, PM

#: name -> submodule; the engine imports torch, so it loads on first access and the spec
#: grammar (:mod:`.spec`) and what reads results stay light (``robrank --help`` imports no torch)
_LAZY: dict[str, str] = {
    "attack_mode": "robrank.models.modes",
    **dict.fromkeys(("Attack", "BatchContext", "BatchOutcome", "Selection", "Surrogate"), f"{__name__}.base"),
    **dict.fromkeys(("Gallery", "device_dataset", "iter_images"), f"{__name__}.gallery"),
    **dict.fromkeys(
        ("AttackOptions", "AttackResult", "FastEmbedding", "accelerate", "auto_batch_size", "build_attack", "check_task",
         "dataset_attack_defaults", "merge_results", "run_attack"),
        f"{__name__}.runner",
    ),
    **dict.fromkeys(("AttackSpec", "parse_spec"), f"{__name__}.spec"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


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
