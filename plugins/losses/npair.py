"""N-pair loss on SPC-2 batches (reference ``pnpairE``).

For every even-index anchor a with partner p and all different-label items n:

    log(1 + Σ_n exp(<â, x_n - x_p>))

with â the L2-normalised anchor (the reference's "norm trick") and x raw; averaged over
anchors, plus 5e-3 · mean ‖x‖ over the batch. An anchor without negatives contributes
log(1) = 0 (the reference drew a random index instead).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from robrank.plugin_api import Criterion, check_spc2

L2_WEIGHT = 5e-3


class NPairLoss(Criterion):
    """N-pair loss: each anchor against its partner and every negative of the batch."""

    family = "npair"
    supported_metrics = ("E",)

    def __init__(
        self, metric: str, miner=None, *, l2_weight: float = L2_WEIGHT, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(metric, None, generator=generator)
        self.l2_weight = float(l2_weight)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_spc2(embeddings, labels, "loss 'npair'")
        x = self.embed(embeddings)
        labels = labels.view(-1).to(x.device)
        anchors_hat = F.normalize(x[0::2], p=2, dim=-1)
        inner = anchors_hat @ x.T  # <â, x_j>
        inner_ap = (anchors_hat * x[1::2]).sum(dim=-1, keepdim=True)
        neg = labels[0::2].unsqueeze(1) != labels.unsqueeze(0)
        z = (inner - inner_ap).masked_fill(~neg, float("-inf"))
        zero = torch.zeros(z.shape[0], 1, device=z.device, dtype=z.dtype)
        per_anchor = torch.logsumexp(torch.cat([zero, z], dim=1), dim=1)
        return per_anchor.mean() + self.l2_weight * x.norm(p=2, dim=-1).mean()
