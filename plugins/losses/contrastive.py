"""Contrastive loss on SPC-2 batches (reference ``pcontrast*``).

E/N: mean d(a,p) (not squared) + mean over *active* negatives of (m - d(a,n)), m = 1.0;
an empty set of active negatives contributes 0. C: ``cosine_embedding_loss`` with target
+1 for (a,p) and -1 for (a,n), margin 1.0.

Quirk, reproduced: with margin 1.0 the cosine negative term max(0, cos(a,n) - 1) is always
0, so ``pcontrastC`` only pulls positives together. Pass ``margin=`` (e.g. 0.5) to
``build_criterion`` for a cosine contrastive loss that also pushes negatives away.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from robrank.plugin_api import TripletCriterion, active_mean

from .mining import RandomMiner

MARGIN = 1.0


class ContrastiveLoss(TripletCriterion):
    """Contrastive loss over the (a,p) and (a,n) pairs of each mined triplet."""

    family = "contrastive"

    def __init__(
        self, metric: str, miner=None, *, margin: float | None = None, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(metric, miner, generator=generator)
        self.margin = MARGIN if margin is None else float(margin)
        if self.miner is None:
            self.miner = RandomMiner(metric, self.margin, generator=generator)

    def raw(self, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, *, margin: float | None = None) -> torch.Tensor:
        margin = self.margin if margin is None else margin
        if self.metric == "C":
            target = torch.ones(a.shape[0], device=a.device, dtype=a.dtype)
            lap = F.cosine_embedding_loss(a, p, target, margin=margin)
            lan = F.cosine_embedding_loss(a, n, -target, margin=margin)
            return lap + lan
        lap = F.pairwise_distance(a, p, p=2).mean()
        lan = active_mean(margin - F.pairwise_distance(a, n, p=2))
        return lap + lan
