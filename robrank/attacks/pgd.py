"""The one PGD loop of robrank, shared by the ranking attacks and the defenses' inner attacks.

Reference semantics (the reference): minimise an objective over the L∞ ball of radius ε
around the clean images, inside [0, 1]; each step x ← x − α·sign(∇ₓ objective) (α replaced
by ε when there is a single step: FGSM), then projection onto the ball and clamp; no random
start unless asked; the last iterate is returned. Gradients are taken with
``torch.autograd.grad`` with respect to the images only, so no weight gradient is ever
accumulated, and nothing in the loop waits on the device unless ``early_stop`` asks for it.

Where the step direction comes from is pluggable: ``gradient(x, step) -> (value, grad)``
replaces the autograd input gradient, e.g. by the black-box NES estimate of
:mod:`robrank.attacks.nes`; the projection, the update rule and the bookkeeping stay here.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

#: objective(x, step) -> scalar to minimise (sum over samples keeps their gradients independent)
Objective = Callable[[torch.Tensor, int], torch.Tensor]
#: update(x, grad, state, step_size) -> next iterate before projection (state lives for one run)
Update = Callable[[torch.Tensor, torch.Tensor, dict[str, Any], float], torch.Tensor]
#: gradient(x, step) -> (objective value, direction estimate shaped like x)
Gradient = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]


def sign_step(x: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], step_size: float) -> torch.Tensor:
    """The reference's update: a signed-gradient step."""
    return x - step_size * grad.sign()


def autograd_gradient(objective: Objective) -> Gradient:
    """The white-box direction: the input gradient of ``objective`` (no weight gradients)."""

    def gradient(x: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            value = objective(x, step)
            (grad,) = torch.autograd.grad(value, x)
        return value.detach(), grad

    return gradient


def pgd_minimize(
    objective: Objective,
    x0: torch.Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    start: torch.Tensor | None = None,
    update: Update = sign_step,
    early_stop: float | None = None,
    history: list[float] | None = None,
    gradient: Gradient | None = None,
) -> torch.Tensor:
    """Minimise ``objective`` over {x : ‖x − x0‖∞ ≤ eps, 0 ≤ x ≤ 1}; returns the last iterate.

    ``start`` is the first iterate (a random start), ``x0`` itself otherwise. ``early_stop``
    stops after a step whose objective differs from the previous one by less than this
    (HM's saturation stop; it is the only per-step host sync). ``history`` receives the
    objective before each step, for tests and logs. ``gradient`` replaces the autograd input
    gradient of ``objective`` (which is then unused), e.g. by an NES estimate.
    """
    x0 = x0.detach()
    x = (x0 if start is None else start.detach()).clone()
    step_size = eps if steps == 1 else alpha
    low, high = (x0 - eps).clamp_(min=0.0), (x0 + eps).clamp_(max=1.0)
    state: dict[str, Any] = {}
    values: list[torch.Tensor] = []
    previous: float | None = None
    direction = gradient if gradient is not None else autograd_gradient(objective)
    for step in range(steps):
        value, grad = direction(x, step)
        with torch.no_grad():
            x = torch.minimum(torch.maximum(update(x.detach(), grad, state, step_size), low), high)
        if history is not None or early_stop is not None:
            values.append(value.detach())
        if early_stop is not None:
            current = float(values[-1])
            if previous is not None and abs(previous - current) < early_stop:
                break
            previous = current
    if history is not None and values:
        history.extend(torch.stack(values).float().tolist())
    return x.detach()
