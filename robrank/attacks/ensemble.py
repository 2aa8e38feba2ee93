"""Searches of an attack (``Run``) and the per-sample worst case over several of them.

One fixed-step PGD run can fail on a sample for reasons that say nothing about the model:
a step size that oscillates, an objective that is flat where it starts, a poor last
iterate. AutoAttack's answer in classification is to run several complementary attacks
and keep, *per sample*, the strongest. ``opt=worst`` does that for a ranking attack:

* ``pgd``: the attack exactly as its spec says (fixed-step PGD from the clean point), so
  the worst case is never weaker than the plain attack on any sample or column;
* ``apgd``: APGD on the reference objective, the same number of gradient evaluations;
* ``apgd-smooth``: APGD on the attack's smooth surrogate (:mod:`robrank.attacks.surrogates`),
  the same budget split over ``restarts`` runs (default 2), the first from the clean point,
  the others from random points of the ball.

That is 3× the gradient evaluations of the plain attack. Each member is evaluated by the
attack's own per-sample success measures (:meth:`Attack.success`): for every measure — the
metric one ERS column reads — each sample keeps the strongest member's value (the first
member on ties), so a column is the worst case *for that column*; the other metrics and
the adversarial images come from the member that is strongest on the measures in order.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
#: runs the smooth APGD member of the worst case is split into when ``restarts`` is not given
WORST_RESTARTS = 2


@dataclass(frozen=True)
class Run:
    """One search: optimiser (``pgd``/``apgd``), objective, gradient evaluations per restart, restarts."""

    name: str
    opt: str
    loss: str
    steps: int
    restarts: int = 1

    @property
    def gradients(self) -> int:
        return self.steps * self.restarts


def runs(opt: str, loss: str, steps: int, restarts: int | None) -> tuple[Run, ...]:
    """The searches an attack with these settings performs (one, or the worst-case members)."""
    if opt != "worst":
        return (Run(opt, opt, loss, steps, restarts or 1),)
    split = restarts or WORST_RESTARTS
    return (
        Run("pgd", "pgd", "reference", steps),
        Run("apgd", "apgd", "reference", steps),
        Run("apgd-smooth", "apgd", "smooth", max(1, steps // split), split),
    )


def strongest(values: torch.Tensor, direction: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample of ``values`` ``[R, B]`` (one row per member): the strongest value and its member.

    ``direction`` +1 means a larger value is a stronger attack, -1 a smaller one; ties go to
    the earliest member (``argmax`` returns the first maximum).
    """
    winner = (values * direction).argmax(dim=0)
    return values.gather(0, winner.view(1, -1))[0], winner


def ordered_winner(members: list[dict[str, torch.Tensor]], success: dict[str, int]) -> torch.Tensor:
    """Per sample, the member strongest on the success measures taken in order (earliest on ties)."""
    count, batch = len(members), next(iter(members[0].values())).shape[0]
    alive = torch.ones(count, batch, dtype=torch.bool, device=next(iter(members[0].values())).device)
    for key, direction in success.items():
        strength = torch.stack([m[key] for m in members]) * direction
        strength = strength.masked_fill(~alive, float("-inf"))
        alive &= strength == strength.amax(dim=0, keepdim=True)
    return alive.to(torch.int64).argmax(dim=0)


def combine(
    members: list[dict[str, torch.Tensor]], adversarial: list[torch.Tensor], success: dict[str, int]
) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The worst case of members' per-sample summaries: (images, summary, winner per measure).

    Each success measure takes every sample's strongest value over the members; the other
    metrics and the images come from :func:`ordered_winner`'s member.
    """
    winner = ordered_winner(members, success) if success else torch.zeros_like(next(iter(members[0].values())), dtype=torch.int64)
    images = torch.stack(adversarial)
    index = winner.view(1, -1, *([1] * (images.dim() - 2))).expand(1, *images.shape[1:])
    chosen = images.gather(0, index)[0]
    summary: dict[str, torch.Tensor] = {}
    wins: dict[str, torch.Tensor] = {}
    for key in members[0]:
        stack = torch.stack([m[key] for m in members])
        if key in success:
            summary[key], wins[key] = strongest(stack, success[key])
        else:
            summary[key] = stack.gather(0, winner.view(1, -1))[0]
    return chosen, summary, wins
