"""A defense replaces the loss computation of one training step.

The training engine owns everything else (data, optimiser, AMP, DDP, checkpoints); a
defense only turns a benign SPC-2 batch into the loss to optimise, usually by running an
inner attack first. That is why any defense composes with any backbone and any compatible
loss without a new file.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Defense:
    """Base class. Subclasses override :meth:`loss`.

    ``model`` maps [0, 1] pixels to raw embeddings (``model.embed`` applies the metric's
    normalisation); ``criterion`` is the loss module (``criterion(emb, labels)`` and, for
    triplet-style losses, ``criterion.raw(a, p, n)``); ``images``/``labels`` are the SPC-2
    batch of 2B images. The return value is the scalar to back-propagate; ``self.logs``
    may collect extra numbers (benign loss, inner-attack objective) for the progress bar.
    """

    name: str = ""
    #: whether BatchNorm layers of the backbone are trained (reference quirk: EST yes, ACT no)
    trains_batchnorm: bool = False

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.logs: dict[str, float] = {}

    def check(self, loss_record: Any, metric: str) -> None:
        """Raise ConfigError for a loss/metric this defense cannot use (before any work)."""

    def loss(self, model: nn.Module, criterion: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class NoDefense(Defense):
    """Plain metric learning: the loss on the benign embeddings."""

    name = "none"

    def loss(self, model: nn.Module, criterion: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return criterion(model(images), labels)
