"""InfoNCE on SPC-2 pairs (reference ``piceC``).

Cosine similarities between the anchors (even indices) and their partners (odd indices),
logits scaled by exp(t) with t = 0, and the symmetric cross-entropy whose targets are the
diagonal. Other pairs of the same class in the batch count as negatives, as in the
reference.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from robrank.plugin_api import Criterion, check_spc2

TEMPERATURE_LOG = 0.0


class InfoNCELoss(Criterion):
    """Symmetric InfoNCE between anchors and partners; no miner."""

    family = "infonce"
    supported_metrics = ("C",)

    def __init__(
        self, metric: str, miner=None, *, t: float = TEMPERATURE_LOG, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(metric, None, generator=generator)
        self.t = float(t)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_spc2(embeddings, labels, "loss 'infonce'")
        x = F.normalize(embeddings, p=2, dim=-1)
        logits = (x[0::2] @ x[1::2].T) * math.exp(self.t)
        target = torch.arange(logits.shape[0], device=logits.device)
        return 0.5 * F.cross_entropy(logits, target) + 0.5 * F.cross_entropy(logits.T, target)
