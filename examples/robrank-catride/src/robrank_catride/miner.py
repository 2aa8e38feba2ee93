"""The gradually-hard semihard miner of CA-TRIDE's released code ("spc2-ghard").

SPC-2 batches [c1, c1, c2, c2, ...]: anchors at the even indices, the positive is the odd
partner, the negative is drawn at random among the *semihard* items on the benign
embeddings, with a margin that shrinks as training goes on:

    label differs,  d_an² > d_ap²,  d_ap − d_an + m_g > 0,  m_g = m_0 (1 − r/2)²

with r the training progress (e/E in the code; 0.2 → 0.05). No semihard item: any
different-label item; none either: any item. Built by the defense, which sets
:attr:`progress` before every step; used inside a plain loss (``--miner ghard``, ``pgtripletN``) nobody
advances it and it mines as the plain semihard miner at margin m_0.
"""
from __future__ import annotations

import torch

from robrank.plugin_api import MINER_GRAM_FLOOR, Miner, Triplets, choose_in_rows, pairwise, spc2_anchors_positives

from .objectives import MINER_MARGIN, miner_margin


class GraduallyHardMiner(Miner):
    """Semihard negatives under the shrinking margin m_g(progress); progress in [0, 1]."""

    name = "ghard"
    letter = "g"

    def __init__(self, metric: str, margin: float | None = None, *, generator: torch.Generator | None = None) -> None:
        super().__init__(metric, MINER_MARGIN if margin is None else margin, generator=generator)
        #: training progress r (e/E or t/T), set by the defense
        self.progress = 0.0

    @property
    def current_margin(self) -> float:
        return miner_margin(self.progress, float(self.margin))

    def mine(self, x: torch.Tensor, labels: torch.Tensor) -> Triplets:
        anchors, positives = spc2_anchors_positives(x.shape[0], x.device)
        different = labels[anchors].unsqueeze(1) != labels.unsqueeze(0)
        dist = pairwise(x[anchors], x, self.metric, gram_floor=MINER_GRAM_FLOOR)
        dap = dist.gather(1, positives.view(-1, 1))
        semihard = (dist.pow(2) > dap.pow(2)) & (dap - dist + self.current_margin > 0) & different
        return anchors, positives, choose_in_rows([semihard, different], self.generator)
