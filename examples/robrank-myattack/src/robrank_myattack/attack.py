"""MICA: the candidate attack CA± driven by momentum iterative FGSM (MI-FGSM) instead of plain PGD.

The reference's candidate attack takes sign-gradient steps, ``x <- x - alpha * sign(grad)``.
Its objective is a sum of hinges over the whole gallery, ``relu(d(c, q) - d(x, q))`` for
CA+: as the candidate passes gallery items their hinges switch off, so the gradient changes
direction abruptly from step to step and vanishes altogether once the candidate is ranked
first, and sign-PGD zig-zags inside the ε-ball. MI-FGSM (Dong et al., "Boosting
Adversarial Attacks with Momentum", CVPR 2018) accumulates a velocity of L1-normalised
gradients and steps along its sign::

    g <- mu * g + grad / ||grad||_1
    x <- clip_{x0, eps}(x - alpha * sign(g))

(``-`` because robrank's attack objectives are minimised). The L1 normalisation makes every
step's gradient count equally however the hinge sum's scale changes; the momentum keeps a
consistent direction through the flat and switching regions of the hinge landscape (the
paper also found momentum attacks to transfer better between models).

Everything else — the query selection, the objective, the ``prank`` metric, projection onto
the ε-ball and [0, 1], both semantics — is CA's, inherited unchanged: MICA overrides only
the update rule (:meth:`robrank.attacks.Attack.step`) and adds one typed spec field, the
decay ``mu`` (``MICA:pm=+:W=1:mu=0.5:...``; 1.0 when left out, and then not written in the
canonical spec, so ``mu`` could be added without changing any stored spec). With
``pgditer=1`` (FGSM) or ``mu=0`` it is exactly CA. The report shows its ``prank`` exactly as
CA's (percentile, in percent): the display is inherited with everything else.
"""
from __future__ import annotations

from typing import Any

import torch

from robrank.plugin_api import CandidateAttack

from .fields import MICADeclaration

#: smallest L1 norm a gradient is divided by: a sample whose gradient vanished (its
#: candidate already ranks where the attack wants it) adds nothing to its velocity
TINY = 1e-12


def momentum_step(x: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], step_size: float, decay: float) -> torch.Tensor:
    """One MI-FGSM step on a batch: per-sample L1-normalised gradient into the velocity ``state["g"]``."""
    norm = grad.abs().flatten(1).sum(dim=1).clamp_min(TINY).view(-1, *([1] * (grad.dim() - 1)))
    velocity = grad / norm
    if "g" in state:
        velocity = velocity + decay * state["g"]
    state["g"] = velocity
    return x - step_size * velocity.sign()


class MICA(MICADeclaration, CandidateAttack):
    """Momentum candidate attack: CA± (W queries) with MI-FGSM updates, decay ``mu`` (declared in :mod:`.fields`)."""

    mu: float

    def step(self, x: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], step_size: float) -> torch.Tensor:
        return momentum_step(x, grad, state, step_size, self.mu)
