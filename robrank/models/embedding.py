"""The embedding model that losses, evaluation, attacks and defenses all share."""
from __future__ import annotations

import torch
from torch import nn

from ..distances import check_metric, embed_for_metric


class EmbeddingModel(nn.Module):
    """A backbone plus the metric it was trained for.

    ``forward`` returns raw embeddings (what losses consume; they normalise themselves, as
    the reference losses do); ``embed`` applies the metric's normalisation (what galleries,
    attacks and retrieval metrics use). Keeping the metric on the model means a checkpoint
    carries everything an attack needs to measure distances the way training did.
    """

    def __init__(self, backbone: nn.Module, metric: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.metric = check_metric(metric)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return embed_for_metric(self.backbone(images), self.metric)
