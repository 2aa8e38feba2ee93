"""APGD (Croce & Hein, ICML 2020) for any objective of the shared PGD loop, minimising.

Fixed-step PGD needs its step size tuned per model and budget and returns whatever its
last iterate happens to be. APGD removes both weaknesses with a schedule that needs no
tuning, which is why AutoAttack made it the standard in classification:

* the step size starts at 2ε and is *halved per sample* at checkpoints when progress
  stalled: since the previous checkpoint, the objective decreased in at most ρ = 75 % of
  the steps, or neither the step size nor the best objective changed; the iterate then
  restarts from the best point found so far. Checkpoints are the paper's: the first after
  22 % of the budget, each following period 3 % of the budget shorter, but at least 6 %;
* a momentum of 0.75 on the projected step (none on the first step);
* the returned point is the *best* iterate, not the last. "Best" is judged by the
  attack's own per-sample success measure (``judge``: e.g. a perturbed candidate's
  percentile rank), ties broken by the objective, because the objective only approximates what an
  attack is scored on; the start point is a candidate too, so a run never ends worse
  than where it began;
* ``restarts`` runs in all, the first from the start, the others from random points of
  the ball, each with the same budget,
  keeping per sample the best over all of them.

Budget: a run of ``steps`` spends exactly ``steps`` gradient evaluations (the start and
``steps - 1`` moves; the last move's objective and success are measured with that same
evaluation), the budget of ``steps`` steps of PGD. L∞ steps along sign(∇), L2 along ∇/‖∇‖₂.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .pgd import Budget, Gradient, Objective, autograd_gradient, box, check_norm, project, steepest

#: APGD's constants (paper, §3): momentum, the progress fraction ρ, initial step 2ε, checkpoints
MOMENTUM = 0.75
RHO = 0.75
INITIAL_STEP = 2.0
FIRST_CHECKPOINT = 0.22
PERIOD_DECREASE = 0.03
MIN_PERIOD = 0.06

#: judge() -> ``[B, K]`` success measures of the iterate last passed to the objective, lower =
#: stronger, compared column by column (the objective breaks the remaining ties)
Judge = Callable[[], torch.Tensor]
#: start(r) -> the first iterate of restart r (r >= 1), inside the ball
Starts = Callable[[int], torch.Tensor]


def checkpoints(steps: int) -> list[int]:
    """Iterations after which the step size is reviewed: w_0 = ⌈0.22·N⌉, periods shrinking by 0.03·N to ≥ 0.06·N.

    The paper's p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06) with p_0 = 0, p_1 = 0.22,
    rounded as the AutoAttack code rounds them (``max(int(f·N), 1)``).
    """
    first = max(int(FIRST_CHECKPOINT * steps), 1)
    decrease = max(int(PERIOD_DECREASE * steps), 1)
    least = max(int(MIN_PERIOD * steps), 1)
    points, at, period = [], first, first
    while at < steps:
        points.append(at)
        period = max(period - decrease, least)
        at += period
    return points


def lexicographic_less(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per row of ``[B, K]`` keys: is ``a`` strictly smaller than ``b``, column 0 first?"""
    less = torch.zeros(a.shape[0], dtype=torch.bool, device=a.device)
    tied = torch.ones_like(less)
    for k in range(a.shape[1]):
        less |= tied & (a[:, k] < b[:, k])
        tied &= a[:, k] == b[:, k]
    return less


@dataclass
class Best:
    """The best point per sample and its key ``[B, K]``: success measures, lower = stronger, then the objective."""

    x: torch.Tensor
    key: torch.Tensor

    @property
    def loss(self) -> torch.Tensor:
        return self.key[:, -1]

    def update(self, x: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """Keep ``x`` where its key is strictly better; returns where it was."""
        better = lexicographic_less(key, self.key)
        self.x = torch.where(better.view(-1, *([1] * (x.dim() - 1))), x, self.x)
        self.key = torch.where(better.view(-1, 1), key, self.key)
        return better


def apgd_run(
    objective: Objective,
    x0: torch.Tensor,
    start: torch.Tensor,
    *,
    eps: float,
    steps: int,
    norm: float = math.inf,
    judge: Judge | None = None,
    gradient: Gradient | None = None,
    budget: Budget | None = None,
    history: list[float] | None = None,
) -> Best:
    """One APGD run from ``start``; the best iterate per sample by its judged success, then the objective.

    ``history`` receives the objective summed over samples at every evaluated iterate.
    ``gradient`` replaces the autograd direction (e.g. a black-box estimate, which counts its
    own cost); ``budget`` counts the autograd direction's gradient evaluations.
    """
    norm = check_norm(norm)
    direction = gradient if gradient is not None else autograd_gradient(objective, budget)
    x0 = x0.detach()
    bounds = box(x0, eps) if norm == math.inf else None
    batch = x0.shape[0]
    shape = (-1, *([1] * (x0.dim() - 1)))

    def evaluate(x: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        value, grad = direction(x, step)
        value = value.detach().reshape(batch)
        key = value.view(-1, 1).to(torch.float64)
        if judge is not None:
            key = torch.cat([judge().detach().reshape(batch, -1).to(torch.float64), key], dim=1)
        if history is not None:
            history.append(float(value.sum()))
        return value, key, grad

    x = project(start.detach(), x0, eps, norm, bounds)
    loss, key, grad = evaluate(x, 0)
    best = Best(x.clone(), key.clone())  # what is returned: by success, then objective
    lowest = Best(x.clone(), loss.view(-1, 1).clone())  # APGD's x_max: by objective alone
    lowest_grad = grad.clone()
    step_size = torch.full((batch,), INITIAL_STEP * eps, dtype=x0.dtype, device=x0.device)
    previous = x.clone()
    decreased = torch.zeros(batch, dtype=torch.int64, device=x0.device)
    lowest_at_check = lowest.loss.clone()
    halved_at_check = torch.ones(batch, dtype=torch.bool, device=x0.device)
    reviews = set(checkpoints(steps))
    since_check = 0
    for step in range(1, steps):
        with torch.no_grad():
            weight = 1.0 if step == 1 else MOMENTUM
            z = project(x - step_size.view(shape) * steepest(grad, norm), x0, eps, norm, bounds)
            moved = project(x + weight * (z - x) + (1.0 - weight) * (x - previous), x0, eps, norm, bounds)
            previous = x
            x = moved
        new_loss, key, grad = evaluate(x, step)
        with torch.no_grad():
            decreased += (new_loss < loss).to(torch.int64)
            loss = new_loss
            best.update(x, key)
            improved = lowest.update(x, loss.view(-1, 1))
            lowest_grad = torch.where(improved.view(shape), grad, lowest_grad)
            since_check += 1
            if step in reviews:
                stalled = decreased.to(torch.float64) <= RHO * since_check
                unchanged = ~halved_at_check & (lowest.loss >= lowest_at_check)
                halve = stalled | unchanged
                step_size = torch.where(halve, step_size / 2.0, step_size)
                x = torch.where(halve.view(shape), lowest.x, x)
                grad = torch.where(halve.view(shape), lowest_grad, grad)
                halved_at_check, lowest_at_check = halve, lowest.loss.clone()
                decreased.zero_()
                since_check = 0
    return best


def apgd_minimize(
    objective: Objective,
    x0: torch.Tensor,
    *,
    eps: float,
    steps: int,
    norm: float = math.inf,
    start: torch.Tensor | None = None,
    restarts: int = 1,
    starts: Starts | None = None,
    judge: Judge | None = None,
    gradient: Gradient | None = None,
    budget: Budget | None = None,
    history: list[float] | None = None,
) -> Best:
    """APGD with ``restarts`` runs of ``steps`` gradient evaluations each; the per-sample best.

    The first run starts at ``start`` (``x0`` when None), run r ≥ 1 at ``starts(r)``
    (required when ``restarts > 1``). The result's ``x``, ``key`` and ``loss`` are the best
    point over every run, judged as in :func:`apgd_run` (``key``: its success measures and objective).
    """
    if steps < 1 or restarts < 1:
        raise ValueError(f"APGD needs steps >= 1 and restarts >= 1 (got {steps}, {restarts})")
    if restarts > 1 and starts is None:
        raise ValueError("APGD restarts need a function giving each restart's random start")
    result: Best | None = None
    for r in range(restarts):
        first = (x0 if start is None else start) if r == 0 else starts(r)
        run = apgd_run(objective, x0, first, eps=eps, steps=steps, norm=norm, judge=judge, gradient=gradient, budget=budget, history=history)
        if result is None:
            result = run
        else:
            result.update(run.x, run.key)
    assert result is not None
    return result
