"""Margin loss (Wu et al. 2017) on SPC-2 batches (reference ``pmargin*``).

mean over active of relu(d(a,p) - β + m) + mean over active of relu(β - d(a,n) + m),
m = 0.2, β a learnable scalar initialised at 0.6. β is trained by the loss's own optimiser
(:meth:`make_optimizer`: SGD, lr 5e-4), as the reference returns a second optimiser for it.

Deviation: the reference L2-normalises the embeddings for every metric, so its
``pmarginE`` is ``pmarginN``; here E uses raw embeddings like every other loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robrank.plugin_api import TripletCriterion, active_mean

from .mining import RandomMiner

BETA = 0.6
MARGIN = 0.2
BETA_LR = 5e-4


class MarginLoss(TripletCriterion):
    """Margin loss with a learnable boundary β (``criterion.beta``, an ``nn.Parameter``)."""

    family = "margin"
    param_optimizer = ("SGD", {"lr": BETA_LR})

    def __init__(
        self,
        metric: str,
        miner=None,
        *,
        margin: float | None = None,
        beta: float | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(metric, miner, generator=generator)
        self.margin = MARGIN if margin is None else float(margin)
        self.beta = nn.Parameter(torch.tensor(BETA if beta is None else float(beta)))
        if self.miner is None:
            self.miner = RandomMiner(metric, self.margin, generator=generator)

    def raw(self, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, *, margin: float | None = None) -> torch.Tensor:
        margin = self.margin if margin is None else margin
        if self.metric == "C":
            dap = 1.0 - F.cosine_similarity(a, p, dim=-1)
            dan = 1.0 - F.cosine_similarity(a, n, dim=-1)
        else:
            dap = F.pairwise_distance(a, p, p=2)
            dan = F.pairwise_distance(a, n, p=2)
        beta = self.beta.to(a.dtype)
        return active_mean((dap - beta + margin).relu()) + active_mean((beta - dan + margin).relu())
