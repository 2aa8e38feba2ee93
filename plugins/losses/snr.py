"""Signal-to-noise-ratio loss on SPC-2 batches (reference ``psnr*``).

pos = var(a - p) / var(a), neg = var(a - n) / var(a) (variances over the embedding
dimension, unbiased as ``torch.var``); loss = Σ relu(pos - neg + 0.2) / #active +
0.005 · mean |Σ_dim a|. Deviation: with no active triplet the reference divides 0 by 0
(NaN); here the hinge part is 0.
"""
from __future__ import annotations

import torch

from robrank.plugin_api import TripletCriterion, active_mean

from .mining import RandomMiner

MARGIN = 0.2
REG_LAMBDA = 0.005


class SNRLoss(TripletCriterion):
    """SNR triplet loss with a zero-mean regulariser on the anchors."""

    family = "snr"

    def __init__(
        self,
        metric: str,
        miner=None,
        *,
        margin: float | None = None,
        reg_lambda: float = REG_LAMBDA,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(metric, miner, generator=generator)
        self.margin = MARGIN if margin is None else float(margin)
        self.reg_lambda = float(reg_lambda)
        if self.miner is None:
            self.miner = RandomMiner(metric, self.margin, generator=generator)

    def raw(self, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, *, margin: float | None = None) -> torch.Tensor:
        margin = self.margin if margin is None else margin
        var_a = torch.var(a, dim=1)
        pos = torch.var(a - p, dim=1) / var_a
        neg = torch.var(a - n, dim=1) / var_a
        hinge = active_mean((pos - neg + margin).relu())
        return hinge + self.reg_lambda * a.sum(dim=1).abs().mean()
