"""Adversarial-training defenses: the contract every defense plugin implements.

The declarations (:mod:`.declaration`: options, family defaults) import no torch; the
implementation bases (:mod:`.base`) do, so they load on first access and a defense's
declaration can be read (``robrank list defenses``) without torch.
"""
import importlib
from typing import Any

#: name -> submodule; the base classes import torch, so they load on first access
_LAZY: dict[str, str] = dict.fromkeys(("Defense", "NoDefense", "TrainingProgress"), f"{__name__}.base")


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["Defense", "NoDefense", "TrainingProgress"]
