"""Multi-similarity loss (Wang et al. 2019) on SPC-2 batches (reference ``pmsC``, ``pmsN``).

Cosine similarities s; for every even-index anchor, with its positives P (same label, the
anchor itself included) and negatives N:

    (1/2) log(1 + Σ_P exp(-2 (s_ap - 0.5))) + (1/40) log(1 + Σ_N exp(40 (s_an - 0.5)))

averaged over anchors. Quirk, reproduced: the reference's pair mining keeps positives with
s_ap + 0.1 > min s_ap and negatives with s_an - 0.1 < max s_an, which every pair satisfies,
so no pair is ever dropped (Wang et al. compare positives with the hardest *negative* and
vice versa). Both C and N use cosine similarities.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from robrank.plugin_api import Criterion, check_spc2, mean_or_zero

POS_WEIGHT = 2.0
NEG_WEIGHT = 40.0
MARGIN = 0.1
THRESHOLD = 0.5


def _log1p_sum_exp(z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row-wise log(1 + Σ_{mask} exp(z)), computed stably."""
    z = z.masked_fill(~mask, float("-inf"))
    zero = torch.zeros(z.shape[0], 1, device=z.device, dtype=z.dtype)
    return torch.logsumexp(torch.cat([zero, z], dim=1), dim=1)


class MultiSimilarityLoss(Criterion):
    """Multi-similarity loss; selects its own pairs, so it takes no miner."""

    family = "multisim"
    supported_metrics = ("C", "N")

    def __init__(
        self,
        metric: str,
        miner=None,
        *,
        pos_weight: float = POS_WEIGHT,
        neg_weight: float = NEG_WEIGHT,
        margin: float = MARGIN,
        threshold: float = THRESHOLD,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(metric, None, generator=generator)
        self.pos_weight, self.neg_weight = float(pos_weight), float(neg_weight)
        self.margin, self.threshold = float(margin), float(threshold)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_spc2(embeddings, labels, "loss 'multisim'")
        x = F.normalize(embeddings, p=2, dim=-1)
        labels = labels.view(-1).to(x.device)
        sim = x[0::2] @ x.T
        pos = labels[0::2].unsqueeze(1) == labels.unsqueeze(0)
        neg = ~pos
        inf = float("inf")
        min_ap = sim.masked_fill(~pos, inf).amin(dim=1, keepdim=True)
        max_an = sim.masked_fill(~neg, -inf).amax(dim=1, keepdim=True)
        pos = pos & (sim + self.margin > min_ap)
        neg = neg & (sim - self.margin < max_an)
        keep = pos.any(dim=1) & neg.any(dim=1)
        ipos = _log1p_sum_exp(-self.pos_weight * (sim - self.threshold), pos) / self.pos_weight
        ineg = _log1p_sum_exp(self.neg_weight * (sim - self.threshold), neg) / self.neg_weight
        return mean_or_zero((ipos + ineg)[keep], embeddings)
