"""The one PGD loop of robrank, shared by the ranking attacks and the defenses' inner attacks.

Reference semantics (the reference): minimise an objective over the L∞ ball of radius ε
around the clean images, inside [0, 1]; each step x ← x − α·sign(∇ₓ objective) (α replaced
by ε when there is a single step: FGSM), then projection onto the ball and clamp; no random
start unless asked; the last iterate is returned. Gradients are taken with
``torch.autograd.grad`` with respect to the images only, so no weight gradient is ever
accumulated, and nothing in the loop waits on the device unless ``early_stop`` asks for it.

Two extensions keep that loop the single place where descent happens:

* the threat model: ``norm=2`` projects onto the L2 ball (per sample) and steps along the
  L2-normalised gradient, the steepest-descent direction of that ball, as sign is of L∞;
* the direction: ``gradient(x, step) -> (value, grad)`` replaces the autograd input
  gradient, e.g. by the black-box NES estimate of :mod:`robrank.attacks.nes`; the
  projection, the update rule and the bookkeeping stay here. :class:`Budget` counts the
  model passes a search spends (the autograd direction counts itself).

The APGD schedule (step-size halving, momentum, best iterate, restarts) lives in
:mod:`robrank.attacks.apgd` on top of the same pieces.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

#: objective(x, step) -> per-sample values ``[B]`` to minimise (or their scalar sum); the
#: gradient is taken of the sum, so one sample's gradient never depends on the others
Objective = Callable[[torch.Tensor, int], torch.Tensor]
#: update(x, grad, state, step_size) -> next iterate before projection (state lives for one run)
Update = Callable[[torch.Tensor, torch.Tensor, dict[str, Any], float], torch.Tensor]
#: gradient(x, step) -> (objective value, direction estimate shaped like x)
Gradient = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]

#: the threat models: L∞ (the reference's) and L2
NORMS: tuple[float, ...] = (math.inf, 2.0)
#: smallest norm a gradient or perturbation is divided by (a vanished gradient moves nothing)
TINY = 1e-12


@dataclass
class Budget:
    """Model passes spent per attacked sample: the cost of an attack, reported with its result.

    ``gradients`` counts forward+backward passes (one per white-box PGD step), ``forwards``
    forward-only passes (evaluating a result, or a black-box estimator's queries).
    """

    gradients: int = 0
    forwards: int = 0

    def add(self, other: Budget) -> None:
        self.gradients += other.gradients
        self.forwards += other.forwards

    def as_dict(self) -> dict[str, int]:
        return {"gradients": self.gradients, "forwards": self.forwards}


def autograd_gradient(objective: Objective, budget: Budget | None = None) -> Gradient:
    """The white-box direction: the input gradient of ``objective`` (no weight gradients).

    One forward and one input-gradient backward per call, counted in ``budget``. The
    gradient is taken of the objective's sum, so per-sample values keep independent rows.
    """
    def gradient(x: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            value = objective(x, step)
            (grad,) = torch.autograd.grad(value.sum(), x)
        if budget is not None:
            budget.gradients += 1
        return value.detach(), grad

    return gradient


def check_norm(norm: float) -> float:
    norm = float(norm)
    if norm not in NORMS:
        raise ValueError(f"norm must be inf or 2, got {norm!r}")
    return norm


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


def l2_norms(t: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norms, shaped to broadcast against ``t``."""
    return _per_sample(t.flatten(1).norm(p=2, dim=1), t)


def normalized(grad: torch.Tensor) -> torch.Tensor:
    """The per-sample L2-normalised gradient (zero where the gradient vanished)."""
    return grad / l2_norms(grad).clamp_min(TINY)


def steepest(grad: torch.Tensor, norm: float) -> torch.Tensor:
    """The unit steepest-ascent direction of the ``norm`` ball: sign for L∞, grad/‖grad‖₂ for L2."""
    return grad.sign() if norm == math.inf else normalized(grad)


def sign_step(x: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], step_size: float) -> torch.Tensor:
    """The reference's update: a signed-gradient step."""
    return x - step_size * grad.sign()


def l2_step(x: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], step_size: float) -> torch.Tensor:
    """The L2 update: a step of length ``step_size`` along the normalised gradient."""
    return x - step_size * normalized(grad)


def box(x0: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The L∞ ball intersected with [0, 1], as elementwise bounds."""
    return (x0 - eps).clamp_(min=0.0), (x0 + eps).clamp_(max=1.0)


def project(x: torch.Tensor, x0: torch.Tensor, eps: float, norm: float, bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Project ``x`` onto {‖x − x0‖ ≤ eps} ∩ [0, 1] (exactly for L∞; for L2 the ball, then the clamp).

    Clamping after the L2 projection can only move each coordinate towards ``x0`` (which lies
    in [0, 1]), so the result stays inside the ball.
    """
    if norm == math.inf:
        low, high = bounds if bounds is not None else box(x0, eps)
        return torch.minimum(torch.maximum(x, low), high)
    delta = x - x0
    scale = (eps / l2_norms(delta).clamp_min(TINY)).clamp(max=1.0)
    return (x0 + delta * scale).clamp_(0.0, 1.0)


def pgd_minimize(
    objective: Objective,
    x0: torch.Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    start: torch.Tensor | None = None,
    update: Update | None = None,
    early_stop: float | None = None,
    history: list[float] | None = None,
    norm: float = math.inf,
    gradient: Gradient | None = None,
    budget: Budget | None = None,
) -> torch.Tensor:
    """Minimise ``objective`` over {x : ‖x − x0‖ ≤ eps, 0 ≤ x ≤ 1}; returns the last iterate.

    ``start`` is the first iterate (a random start), ``x0`` itself otherwise. ``update`` is
    the step before projection (the norm's steepest step by default: sign for L∞,
    normalised gradient for L2). ``early_stop`` stops after a step whose objective differs
    from the previous one by less than this (HM's saturation stop; it is the only per-step
    host sync). ``history`` receives the objective (summed over samples) before each step,
    for tests and logs. ``gradient`` replaces the autograd input gradient of ``objective``
    (which is then unused), e.g. by an NES estimate; ``budget`` accumulates the gradient
    evaluations of the autograd direction (a replacement counts its own cost).
    """
    norm = check_norm(norm)
    if update is None:
        update = sign_step if norm == math.inf else l2_step
    x0 = x0.detach()
    x = (x0 if start is None else start.detach()).clone()
    step_size = eps if steps == 1 else alpha
    bounds = box(x0, eps) if norm == math.inf else None
    state: dict[str, Any] = {}
    values: list[torch.Tensor] = []
    previous: float | None = None
    direction = gradient if gradient is not None else autograd_gradient(objective, budget)
    for step in range(steps):
        value, grad = direction(x, step)
        with torch.no_grad():
            x = project(update(x.detach(), grad, state, step_size), x0, eps, norm, bounds)
        if history is not None or early_stop is not None:
            values.append(value.sum())
        if early_stop is not None:
            current = float(values[-1])
            if previous is not None and abs(previous - current) < early_stop:
                break
            previous = current
    if history is not None and values:
        history.extend(torch.stack(values).float().tolist())
    return x.detach()
