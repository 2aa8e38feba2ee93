"""Triplet hardness and its manipulation (HM, CVPR'22; the reference).

The hardness of a triplet is H(a, p, n) = d(a, p) − d(a, n) ∈ [−2, 2] on the unit sphere:
negative for easy triplets, positive once the negative is closer than the positive. HM
perturbs a *source* triplet until its hardness reaches a *destination* hardness, given
either by other triplets (a harder sampler) or by the gradual adversary g_LGA, which makes
the destination harder as the model's adversarial loss falls.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..distances import paired
from .settings import METHODS

#: the reference's gradual-adversary constants: the triplet margin (C/N) and the easiest destination
GA_MARGIN = 0.2
GA_FLOOR = -0.2
#: ℓ_{t−1} before the first step (the reference's initial ``_hm_prev_loss``)
GA_INITIAL_LOSS = 2.0


def hardness(a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, metric: str = "N") -> torch.Tensor:
    """H = d(a, p) − d(a, n) per triplet, on metric-embedded (normalised for C/N) rows."""
    return paired(a, p, metric) - paired(a, n, metric)


def gradual_destination(previous_loss: float) -> float:
    """g_LGA: H_D = −0.2 · clamp(ℓ_{t−1}, 0, 0.2) / 0.2.

    A model still losing ≥ 0.2 gets semihard-like destinations (H_D = −0.2); as its
    adversarial loss approaches 0 the destination approaches H_D = 0 (d(a,p) = d(a,n)).
    """
    ratio = min(max(float(previous_loss), 0.0), GA_MARGIN) / GA_MARGIN
    return GA_FLOOR * ratio


def alignment(source: torch.Tensor, destination: torch.Tensor, method: str = "et") -> torch.Tensor:
    """The inner objective HM minimises so that source hardness reaches the destination.

    ``et`` (paper): mean(min(0, H_S − H_D)²) — only triplets still easier than the
    destination are pushed, so nothing is made harder than asked. ``l2``: MSE.
    ``kl``: ``kl_div`` of the L1-normalised hardness vectors, passed as the reference did
    (the source is not a log-probability; the reference says kl and l2 "do not work").
    """
    destination = destination.expand_as(source).to(source.dtype)
    if method == "et":
        return (source - destination).clamp(max=0.0).square().mean()
    if method == "l2":
        return F.mse_loss(source, destination, reduction="mean")
    if method == "kl":
        return F.kl_div(F.normalize(source, p=1, dim=0), F.normalize(destination, p=1, dim=0), reduction="mean")
    raise ValueError(f"unknown hardness alignment {method!r}; use one of {', '.join(METHODS)}")
