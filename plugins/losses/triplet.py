"""Triplet loss on SPC-2 batches (reference ``ptriplet*``, with miner letters m/s/d/D/h).

C: mean max(0, d_C(a,p) - d_C(a,n) + m) with d_C = 1 - cos; E and N: PyTorch's
``triplet_margin_loss`` (p = 2; on L2-normalised vectors for N). Margins from
configs_loss.py: 0.2 for C *and* N, 1.0 for E (0.8 for C/N is said to help EST/ACT
robustness further but is not the default).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from robrank.plugin_api import TripletCriterion

from .mining import RandomMiner

MARGIN = {"C": 0.2, "N": 0.2, "E": 1.0}


def triplet_kernel(a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, metric: str, margin: float) -> torch.Tensor:
    """The reference's ``fn_ptriplet_kernel``, shared by the quadruplet loss."""
    if metric == "C":
        dap = 1.0 - F.cosine_similarity(a, p, dim=-1)
        dan = 1.0 - F.cosine_similarity(a, n, dim=-1)
        return (dap - dan + margin).clamp(min=0.0).mean()
    # Written out rather than F.triplet_margin_loss (same formula, same eps) because torch 2
    # rejects margin 0, which HM's intra-class-structure term needs.
    dap = F.pairwise_distance(a, p, p=2, eps=1e-6)
    dan = F.pairwise_distance(a, n, p=2, eps=1e-6)
    return (dap - dan + margin).clamp(min=0.0).mean()


class TripletLoss(TripletCriterion):
    """Triplet margin loss; ``raw(a, p, n, margin=...)`` is what ACT/HM/EST optimise."""

    family = "triplet"

    def __init__(
        self, metric: str, miner=None, *, margin: float | None = None, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(metric, miner, generator=generator)
        self.margin = MARGIN[metric] if margin is None else float(margin)
        if self.miner is None:
            self.miner = RandomMiner(metric, self.margin, generator=generator)

    def raw(self, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, *, margin: float | None = None) -> torch.Tensor:
        return triplet_kernel(a, p, n, self.metric, self.margin if margin is None else margin)
