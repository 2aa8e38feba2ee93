"""Cross-entropy for classifier backbones (the reference's ``ClassifierTemplate``).

The classifier's output *is* its logits, so the loss takes the raw model output of a plain
classification batch (one image per label, no pairs). Its only metric is ``E`` (no
normalisation): the run's ``embed`` then returns the logits unchanged, which is what the
accuracy metric and the classification attacks read.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robrank.plugin_api import ConfigError


class CrossEntropy(nn.Module):
    """Mean softmax cross-entropy of logits ``[B, K]`` against labels ``[B]``."""

    def __init__(self, metric: str = "E", miner=None) -> None:
        super().__init__()
        self.metric = metric
        self.miner = None

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 2:
            raise ConfigError(f"loss 'ce' expects logits of shape [B, classes]; got {tuple(logits.shape)}")
        return F.cross_entropy(logits, labels.view(-1).to(logits.device))
