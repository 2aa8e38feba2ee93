"""A defense replaces the loss computation of one training step.

The training engine owns everything else (data, optimiser, AMP, DDP, checkpoints); a
defense only turns a benign SPC-2 batch into the loss to optimise, usually by running an
inner attack first. That is why any defense composes with any backbone and any compatible
loss without a new file.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..plugins import Registry
from .settings import pgd_defaults


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

    def bind(self, registry: Registry) -> None:
        """Resolve what the defense names through the run's registry (HM's miners).

        The plan calls it once, right after building the defense, with the registry the
        entry point created; a defense that names no other component ignores it.
        """

    def loss(self, model: nn.Module, criterion: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- optional extensions (the engine may ignore them; defaults keep old defenses valid) --

    def settings(self) -> dict[str, Any]:
        """The resolved options, for the run's config.json (so a run says what it trained with)."""
        return dict(self.options)

    def state_dict(self) -> dict[str, Any]:
        """Training-time state that must survive ``--resume`` (HM's gradual adversary)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class NoDefense(Defense):
    """Plain metric learning: the loss on the benign embeddings.

    It has no options, so an option given to it (say ``--eps`` without a defense) is an
    error rather than silently ignored.
    """

    def __init__(self, **options: Any) -> None:
        if options:
            given = ", ".join(sorted(options))
            raise ConfigError(f"options {given} need a defense but no defense was given; add --defense NAME (robrank list defenses)")
        super().__init__()

    def loss(self, model: nn.Module, criterion: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return criterion(model(images), labels)


class AdversarialDefense(Defense):
    """A defense with an inner L-infinity PGD attack: owns ε, α, η and the BatchNorm policy.

    ``eps``/``alpha``/``pgditer`` left as None take the reference defaults for the image-size
    family (``image_size``: 28x28 -> 77/255, 3/255, 32; 224x224 -> 8/255, 1/255, 32), so the
    engine may pass either the explicit values or just the size. ``pgditer=1`` is the FGSM
    variant (one step of size ε), not a separate defense. ``train_bn`` overrides the
    reference's per-defense BatchNorm policy (:attr:`trains_batchnorm`). Unknown options are
    a ConfigError, so a typo never silently trains with a default.
    """

    #: options a subclass accepts beyond the common ones, with their defaults
    extra_options: dict[str, Any] = {}
    common_options: tuple[str, ...] = ("eps", "alpha", "pgditer", "image_size", "train_bn")

    def __init__(
        self,
        *,
        eps: float | None = None,
        alpha: float | None = None,
        pgditer: int | None = None,
        image_size: int | None = None,
        train_bn: bool | None = None,
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - set(self.extra_options))
        if unknown:
            allowed = ", ".join((*self.common_options, *self.extra_options))
            shown = ", ".join(map(repr, unknown))
            raise ConfigError(f"defense {self.name!r} has no option {shown}; its options are: {allowed}")
        d_eps, d_alpha, d_iter = pgd_defaults(image_size)
        self.eps = float(d_eps if eps is None else eps)
        self.alpha = float(d_alpha if alpha is None else alpha)
        self.pgditer = int(d_iter if pgditer is None else pgditer)
        if not 0.0 < self.eps <= 1.0:
            raise ConfigError(f"defense {self.name!r}: eps must be in (0, 1] (pixels are in [0, 1]), got {self.eps}")
        if self.alpha <= 0.0:
            raise ConfigError(f"defense {self.name!r}: alpha must be positive, got {self.alpha}")
        if self.pgditer < 1:
            raise ConfigError(f"defense {self.name!r}: pgditer must be at least 1 (1 = FGSM), got {self.pgditer}")
        if train_bn is not None:
            self.trains_batchnorm = bool(train_bn)
        merged = {**self.extra_options, **options}
        super().__init__(**merged)
        self.image_size = image_size

    def settings(self) -> dict[str, Any]:
        return {
            "eps": self.eps,
            "alpha": self.alpha,
            "pgditer": self.pgditer,
            "train_bn": self.trains_batchnorm,
            **self.options,
        }


def check_family(defense: str, loss_record: Any, families: Iterable[str], *, needs_raw: bool = True) -> None:
    """A one-line ConfigError unless the loss belongs to one of ``families`` (and exposes raw)."""
    families = tuple(families)
    family = getattr(loss_record, "family", "") or getattr(loss_record, "name", "?")
    name = getattr(loss_record, "name", "?")
    if family not in families:
        raise ConfigError(
            f"defense {defense!r} cannot train loss {name!r} (family {family!r}); "
            f"use a loss of family {', '.join(families)} (e.g. ptripletN)"
        )
    if needs_raw and not getattr(loss_record, "has_raw", True):
        raise ConfigError(f"defense {defense!r} needs a loss with raw(a, p, n); loss {name!r} has none")


def check_metric_in(defense: str, metric: str, metrics: Iterable[str]) -> None:
    metrics = tuple(metrics)
    if metric not in metrics:
        raise ConfigError(
            f"defense {defense!r} supports metric {'/'.join(metrics)} only, got {metric!r}; "
            f"use a loss ending in {'/'.join(metrics)} (e.g. ptriplet{metrics[0]})"
        )
