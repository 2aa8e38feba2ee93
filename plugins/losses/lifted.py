"""Generalised lifted-structure loss on SPC-2 batches (reference ``pgliftE``).

For every even-index anchor a, with P its same-label items except itself and N its
different-label items:

    relu(logsumexp_P d(a,p) + logsumexp_N (m - d(a,n)))

averaged over anchors, plus 5e-3 · mean ‖x‖ over the batch. m = 1.0 for E (0.2 for C/N,
which the reference defines but never lists as an allowed loss; registered for E only).
An anchor without negatives is skipped (the reference drew a random index instead).
"""
from __future__ import annotations

import torch

from robrank.plugin_api import (
    LOSS_GRAM_FLOOR,
    Criterion,
    check_spc2,
    mean_or_zero,
    pairwise,
)

MARGIN = {"C": 0.2, "N": 0.2, "E": 1.0}
L2_WEIGHT = 5e-3


class GeneralizedLiftedLoss(Criterion):
    """Generalised lifted structure: all positives and negatives of each anchor at once."""

    family = "glift"
    supported_metrics = ("E",)

    def __init__(
        self,
        metric: str,
        miner=None,
        *,
        margin: float | None = None,
        l2_weight: float = L2_WEIGHT,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(metric, None, generator=generator)
        self.margin = MARGIN[metric] if margin is None else float(margin)
        self.l2_weight = float(l2_weight)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_spc2(embeddings, labels, "loss 'glift'")
        x = self.embed(embeddings)
        labels = labels.view(-1).to(x.device)
        n = x.shape[0]
        anchors = torch.arange(0, n, 2, device=x.device)
        dist = pairwise(x[anchors], x, self.metric, gram_floor=LOSS_GRAM_FLOOR)
        same = labels[anchors].unsqueeze(1) == labels.unsqueeze(0)
        not_self = torch.ones_like(same)
        not_self[torch.arange(len(anchors), device=x.device), anchors] = False
        pos = same & not_self
        neg = ~same
        ninf = float("-inf")
        pos_term = torch.logsumexp(dist.masked_fill(~pos, ninf), dim=1)
        neg_term = torch.logsumexp((self.margin - dist).masked_fill(~neg, ninf), dim=1)
        keep = pos.any(dim=1) & neg.any(dim=1)
        per_anchor = (pos_term + neg_term)[keep].relu()
        return mean_or_zero(per_anchor, x) + self.l2_weight * x.norm(p=2, dim=-1).mean()
