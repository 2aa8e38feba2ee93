"""SES, Suppressing Embedding Shift (ECCV'20 supplementary; reference ``defenses/ses.py``, ``r*e``).

Same inner attack as EST (ES on the whole batch), but the adversarial examples enter the
loss only through a penalty on how far they moved: benign DML loss + 1.0 · mean
d(f(x̃), f(x)), both embeddings computed in train mode with gradient.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robrank.plugin_api import (
    AdversarialDefense,
    embedding_shift,
    embedding_shift_distance,
    inner_eval,
    pairwise_eps_option,
)

from .declarations import SESDeclaration


class SES(SESDeclaration, AdversarialDefense):
    """L(f(x), y) + w · mean d(f(x̃), f(x)).

    The distance follows the reference exactly: N compares normalised embeddings, C uses
    1 − cos, and E uses the reference's "trick" of normalising the adversarial embedding
    only (the benign one stays raw) — kept because it is what the published SES trained
    with. The inner ES attack measures its shift as the reference did (option
    ``pairwise_eps``, as for EST). BatchNorm stays frozen on 224x224 backbones (the reference's SES flag does not
    skip the freezing).
    """

    trains_batchnorm = False

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.options["pairwise_eps"] = pairwise_eps_option(self.name, self.options["pairwise_eps"])

    def loss(self, model: nn.Module, criterion: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        metric = model.metric
        with inner_eval(model):
            adversarial = embedding_shift(
                model, images, metric, eps=self.eps, alpha=self.alpha, steps=self.pgditer,
                pairwise_eps=self.options["pairwise_eps"],
            )
        benign_raw = model(images)
        benign = criterion(benign_raw, labels)
        shift = embedding_shift_distance(model(adversarial), benign_raw, metric).mean()
        loss = benign + float(self.options["weight"]) * shift
        self.logs = {"loss_benign": float(benign.detach()), "embshift": float(shift.detach())}
        return loss
