"""The SPC-2 triplet miners of the reference (``miner.py``), vectorised (registered by :mod:`.miners`).

Each takes the embeddings already normalised for the metric and returns one triplet per
anchor: anchors at the even indices, positives at the partner (odd) index unless the rule
says otherwise (softhard), negatives by the rule. Distances are computed under no_grad with
the Gram trick (C: 1 - x.y). Random choices use ``torch`` (optionally a ``generator``), one
draw per row, instead of the reference's Python loop over anchors.

Letters of the reference names: '' random, m semihard, s softhard, d distance-weighted,
D distance-weighted with p_switch 0.15, h hardest.
"""
from __future__ import annotations

import math

import torch

from robrank.plugin_api import (
    MINER_GRAM_FLOOR,
    Miner,
    Triplets,
    choose_in_rows,
    pairwise,
    random_uniform,
    spc2_anchors_positives,
)


@torch.no_grad()
def miner_distances(anchors: torch.Tensor, items: torch.Tensor, metric: str) -> torch.Tensor:
    """Distances for mining, as the reference computed them (Gram expansion, no gradient)."""
    return pairwise(anchors, items, metric, gram_floor=MINER_GRAM_FLOOR)

#: Triplet margins of configs_loss.py, used when a miner is built without one.
TRIPLET_MARGIN = {"C": 0.2, "N": 0.2, "E": 1.0}


def _layout(x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Anchors, partners, and the [B, 2B] different-label mask of each anchor."""
    anchors, positives = spc2_anchors_positives(x.shape[0], x.device)
    different = labels[anchors].unsqueeze(1) != labels.unsqueeze(0)
    return anchors, positives, different


class RandomMiner(Miner):
    """``spc2-random``: the partner, and a uniformly random different-label negative."""

    name = "random"
    letter = ""

    def mine(self, x: torch.Tensor, labels: torch.Tensor) -> Triplets:
        anchors, positives, different = _layout(x, labels)
        return anchors, positives, choose_in_rows([different], self.generator)


class SemihardMiner(Miner):
    """``spc2-semihard``: a random negative with d(a,p)^2 < d(a,n)^2 and d(a,p) - d(a,n) + margin > 0.

    Falls back to any different-label item (then any item).
    """

    name = "semihard"
    letter = "m"

    def mine(self, x: torch.Tensor, labels: torch.Tensor) -> Triplets:
        anchors, positives, different = _layout(x, labels)
        margin = TRIPLET_MARGIN[self.metric] if self.margin is None else self.margin
        dist = miner_distances(x[anchors], x, self.metric)
        dap = dist.gather(1, positives.view(-1, 1))
        semihard = (dap.pow(2) < dist.pow(2)) & (dap - dist + margin > 0) & different
        return anchors, positives, choose_in_rows([semihard, different], self.generator)


class SofthardMiner(Miner):
    """``spc2-softhard`` (Roth et al.): soft-hard negatives *and* positives.

    Negative: random different-label item closer than the farthest same-label item (the
    anchor itself counts as same-label). Positive: random same-label item farther than the
    closest negative. Fallbacks: any negative; the partner (as the reference states; the
    reference code's fallback was any same-label item, the anchor included).
    """

    name = "softhard"
    letter = "s"

    def mine(self, x: torch.Tensor, labels: torch.Tensor) -> Triplets:
        anchors, positives, different = _layout(x, labels)
        same = ~different
        d2 = miner_distances(x[anchors], x, self.metric).pow(2)
        max_ap2 = d2.masked_fill(different, float("-inf")).amax(dim=1, keepdim=True)
        soft_neg = (d2 < max_ap2) & different
        negatives = choose_in_rows([soft_neg, different], self.generator)
        min_an2 = d2.masked_fill(same, float("inf")).amin(dim=1, keepdim=True)
        soft_pos = (d2 > min_an2) & same
        partner = torch.zeros_like(same)
        partner[torch.arange(len(anchors), device=x.device), positives] = True
        positives = choose_in_rows([soft_pos, partner], self.generator)
        return anchors, positives, negatives


class HardestMiner(Miner):
    """``spc2-hard``: the different-label item with the smallest non-zero distance.

    Exact zeros are skipped as in the reference (which found the different-label items by
    multiplying distances with the label mask); with no candidate it falls back to a random
    different-label item (the reference crashed there).
    """

    name = "hardest"
    letter = "h"

    def mine(self, x: torch.Tensor, labels: torch.Tensor) -> Triplets:
        anchors, positives, different = _layout(x, labels)
        dist = miner_distances(x[anchors], x, self.metric)
        candidate = different & (dist != 0)
        hardest = dist.masked_fill(~candidate, float("inf")).argmin(dim=1)
        fallback = choose_in_rows([different], self.generator)
        return anchors, positives, torch.where(candidate.any(dim=1), hardest, fallback)


class DistanceWeightedMiner(Miner):
    """``spc2-distance`` (Wu et al. 2017): negatives sampled with probability ∝ q(d)^-1.

    log q(d)^-1 = (2 - D) log d - ((D - 3) / 2) log(1 - d^2 / 4), D the embedding dimension,
    over different-label items only, stabilised by subtracting the row maximum; no lower
    cut-off on d (as the reference). Entries where the formula is undefined (d >= 2, e.g.
    metric E) get probability 0; an item at distance 0 (weight +inf) takes all the mass;
    a row with no usable weight samples uniformly among different-label items.
    """

    name = "distance"
    letter = "d"
    p_switch: float = -1.0

    def mine(self, x: torch.Tensor, labels: torch.Tensor) -> Triplets:
        anchors, positives, different = _layout(x, labels)
        dim = float(x.shape[1])
        dist = miner_distances(x[anchors], x, self.metric)
        log_q_inv = (2.0 - dim) * torch.log(dist) - ((dim - 3.0) / 2.0) * torch.log(1.0 - 0.25 * dist.pow(2))
        log_q_inv = torch.nan_to_num(log_q_inv, nan=float("-inf"), posinf=math.inf, neginf=-math.inf)
        log_q_inv = log_q_inv.masked_fill(~different, float("-inf"))
        infinite = log_q_inv == math.inf
        finite = log_q_inv.masked_fill(infinite, float("-inf"))
        row_max = finite.amax(dim=1, keepdim=True)
        has_finite = torch.isfinite(row_max)
        weights = torch.exp(finite - torch.where(has_finite, row_max, torch.zeros_like(row_max)))
        weights = torch.where(infinite.any(dim=1, keepdim=True), infinite.to(weights.dtype), weights)
        empty = weights.sum(dim=1, keepdim=True) <= 0
        uniform = torch.where(different.any(dim=1, keepdim=True), different, torch.ones_like(different))
        weights = torch.where(empty, uniform.to(weights.dtype), weights)
        negatives = self._sample(weights)
        if self.p_switch > 0 and float(random_uniform((1,), x.device, self.generator)) < self.p_switch:
            # "spectrum regularisation" of the ICML'20 upstream code: (anchor, anchor, positive)
            return anchors, anchors.clone(), positives
        return anchors, positives, negatives

    def _sample(self, weights: torch.Tensor) -> torch.Tensor:
        """Inverse-CDF sampling, one index per row, honouring ``self.generator``."""
        cdf = weights.cumsum(dim=1)
        cdf = cdf / cdf[:, -1:]
        u = 1.0 - random_uniform((weights.shape[0], 1), weights.device, self.generator)
        return (cdf < u).sum(dim=1).clamp_max(weights.shape[1] - 1)


class DistanceSwitchMiner(DistanceWeightedMiner):
    """Reference letter ``D``: distance-weighted, but with probability 0.15 the batch's
    triplets become (anchor, anchor, positive) ("spectrum regularisation")."""

    name = "distance-switch"
    letter = "D"
    p_switch = 0.15


MINERS: tuple[type[Miner], ...] = (
    RandomMiner,
    SemihardMiner,
    SofthardMiner,
    DistanceWeightedMiner,
    DistanceSwitchMiner,
    HardestMiner,
)
