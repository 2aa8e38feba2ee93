"""How a model is put to work outside training: mode context managers and the metric embedder.

Attacks, galleries, evaluation and the defenses' inner attacks all run a model that may be
in the middle of training; these helpers say once how its mode is switched and restored,
and how an image batch becomes a metric-normalised embedding, so no layer above the model
needs to know the other layers to do it.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..distances import embed_for_metric


@contextlib.contextmanager
def attack_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (BatchNorm frozen) and no weight gradients for the block; restored afterwards."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the block (weights keep their gradients), then the caller's mode back.

    Restoring with ``model.train(previous)`` respects BatchNorm layers frozen by
    ``freeze_batchnorm`` (their ``train`` is a no-op), so a frozen BN stays in eval mode.
    """
    previous = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(previous)


def embed(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Metric-normalised embeddings (the reference's ``forwardmetric``)."""
    if hasattr(model, "embed"):
        return model.embed(images)
    return embed_for_metric(model(images), model.metric)


__all__ = ["attack_mode", "eval_mode", "embed"]
