"""A defense replaces the loss computation of one training step.

The training engine owns everything else (data, optimiser, AMP, DDP, checkpoints); a
defense only turns a benign SPC-2 batch into the loss to optimise, usually by running an
inner attack first. That is why any defense composes with any backbone and any compatible
loss without a new file.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..params import resolve_options
from ..plugins import Registry
from .declaration import AdversarialDefenseDeclaration, DefenseDeclaration
from .settings import pgd_defaults


@dataclass(frozen=True)
class TrainingProgress:
    """Where training stands when a step begins, for defenses whose inner attack follows a schedule.

    ``epoch`` is the 0-based epoch of the coming step and ``epochs`` the run's planned
    epochs; ``step`` counts the optimiser steps already done and ``total_steps`` is what the
    run will do in all (epochs x steps per epoch, capped by ``--max-steps``).
    """

    epoch: int
    epochs: int
    step: int
    total_steps: int


class Defense(DefenseDeclaration):
    """Base class. Subclasses override :meth:`loss`.

    ``model`` maps [0, 1] pixels to raw embeddings (``model.embed`` applies the metric's
    normalisation); ``criterion`` is the loss module (``criterion(emb, labels)`` and, for
    triplet-style losses, ``criterion.raw(a, p, n)``); ``images``/``labels`` are the SPC-2
    batch of 2B images. The return value is the scalar to back-propagate; ``self.logs``
    may collect extra numbers (benign loss, inner-attack objective) for the progress bar.

    Options are declared like an attack's spec fields: each class lists the :class:`Param`
    objects it adds in ``params`` (base classes first, see :meth:`parameters`), and
    ``self.options`` holds every declared option, checked and with its default filled in.
    An option the defense does not declare, or a value that does not fit, is a one-line
    ConfigError naming the options it has. ``family_defaults`` are the defaults that depend
    on the image-size family (``{SIZE_28: {"eps": ...}, SIZE_224: {...}}``): the training
    config records them in ``defense_options``, so a run says which budget it trained with.
    Both are declared on :class:`~robrank.defenses.declaration.DefenseDeclaration`, the
    torch-free half this class inherits (a defense may declare them on a declaration class
    of its own, so listing it imports no torch).
    """

    #: whether BatchNorm layers of the backbone are trained (reference quirk: EST yes, ACT no)
    trains_batchnorm: bool = False

    def __init__(self, **options: Any) -> None:
        self.options = resolve_options(self.parameters(), options, f"defense {self.name!r}")
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

    def schedule(self, progress: TrainingProgress) -> None:
        """Called by the engine before every step: a curriculum (a step size growing with the
        epoch, a miner margin shrinking) reads the run's progress here instead of counting
        steps itself, so it is right after ``--resume`` and under ``--max-steps``."""


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


class AdversarialDefense(AdversarialDefenseDeclaration, Defense):
    """A defense with an inner L-infinity PGD attack: owns ε, α, η and the BatchNorm policy.

    ``eps``/``alpha``/``pgditer`` left as None take the reference defaults for the image-size
    family (``image_size``: 28x28 -> 77/255, 3/255, 32; 224x224 -> 8/255, 1/255, 32), so the
    engine may pass either the explicit values or just the size. ``pgditer=1`` is the FGSM
    variant (one step of size ε), not a separate defense. ``train_bn`` overrides the
    reference's per-defense BatchNorm policy (:attr:`trains_batchnorm`). ``self.options``
    keeps a subclass's own options; the common ones become attributes. The options are
    declared on :class:`~robrank.defenses.declaration.AdversarialDefenseDeclaration`.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        common = {p.name for p in AdversarialDefenseDeclaration.params}
        given = {k: self.options.pop(k) for k in list(self.options) if k in common}
        d_eps, d_alpha, d_iter = pgd_defaults(given["image_size"])
        self.eps = float(d_eps if given["eps"] is None else given["eps"])
        self.alpha = float(d_alpha if given["alpha"] is None else given["alpha"])
        self.pgditer = int(d_iter if given["pgditer"] is None else given["pgditer"])
        if not 0.0 < self.eps <= 1.0:
            raise ConfigError(f"defense {self.name!r}: eps must be in (0, 1] (pixels are in [0, 1]), got {self.eps}")
        if self.alpha <= 0.0:
            raise ConfigError(f"defense {self.name!r}: alpha must be positive, got {self.alpha}")
        if given["train_bn"] is not None:
            self.trains_batchnorm = bool(given["train_bn"])
        self.image_size = given["image_size"]

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
