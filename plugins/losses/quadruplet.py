"""Quadruplet loss on SPC-2 batches (reference ``pquad*``).

triplet(a, p, n) + mean relu(d(a,p) - d(n, n₂) + m₂), where n₂ is a random batch item
whose label differs from n's; m₂ = 0.1 for C/N, 0.5 for E (triplet margins 0.2 / 1.0).
Deviation: the reference drew n₂ as an index into the *list of negatives* and then used it
as a batch index (and skipped index 0 by testing ``any(where(mask))``); here n₂ is drawn
among batch items with a label different from n's, as the reference describes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from robrank.plugin_api import TripletCriterion, check_spc2, choose_in_rows

from .mining import RandomMiner
from .triplet import MARGIN as TRIPLET_MARGIN
from .triplet import triplet_kernel

MARGIN2 = {"C": 0.1, "N": 0.1, "E": 0.5}


class QuadrupletLoss(TripletCriterion):
    """Triplet loss plus a term pushing d(a,p) below the distance of two other-class items."""

    family = "quadruplet"

    def __init__(
        self,
        metric: str,
        miner=None,
        *,
        margin: float | None = None,
        margin2: float | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(metric, miner, generator=generator)
        self.margin = TRIPLET_MARGIN[metric] if margin is None else float(margin)
        self.margin2 = MARGIN2[metric] if margin2 is None else float(margin2)
        if self.miner is None:
            self.miner = RandomMiner(metric, self.margin, generator=generator)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_spc2(embeddings, labels, "loss 'quadruplet'")
        x = self.embed(embeddings)
        labels = labels.view(-1).to(x.device)
        a, p, n = self.triplets(x, labels)
        other = labels[n].unsqueeze(1) != labels.unsqueeze(0)
        n2 = choose_in_rows([other], self.generator)
        return self.raw(x[a], x[p], x[n], n2=x[n2])

    def raw(
        self,
        a: torch.Tensor,
        p: torch.Tensor,
        n: torch.Tensor,
        *,
        margin: float | None = None,
        n2: torch.Tensor | None = None,
        margin2: float | None = None,
    ) -> torch.Tensor:
        """Triplet term, plus the quadruplet term when the second negatives ``n2`` are given.

        Without ``n2`` the quadruplet term is undefined (it needs labels to draw n₂), so a
        defense that only has (a, p, n) optimises the triplet part.
        """
        loss = triplet_kernel(a, p, n, self.metric, self.margin if margin is None else margin)
        if n2 is None:
            return loss
        margin2 = self.margin2 if margin2 is None else margin2
        if self.metric == "C":
            dap = 1.0 - F.cosine_similarity(a, p, dim=-1)
            dnn = 1.0 - F.cosine_similarity(n, n2, dim=-1)
        else:
            dap = F.pairwise_distance(a, p, p=2)
            dnn = F.pairwise_distance(n, n2, p=2)
        return loss + (dap - dnn + margin2).relu().mean()
