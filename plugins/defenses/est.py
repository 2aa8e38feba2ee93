"""EST, Embedding-Shifted Triplet (ECCV'20; reference ``defenses/est.py``, models ``r*d``).

The inner attack is the ES attack on the whole SPC-2 batch (all 2B images): maximise the
distance between each image's adversarial and clean embedding with the model's metric.
The model's own loss, miner included, is then evaluated on the adversarial embeddings
with the original labels. EST is agnostic to the loss and the backbone.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robrank.plugin_api import (
    AdversarialDefense,
    embedding_shift,
    inner_eval,
    pairwise_eps_option,
)

from .declarations import ESTDeclaration


class EST(ESTDeclaration, AdversarialDefense):
    """L(f(x̃), y) with x̃ = argmax_{‖x̃ − x‖∞ ≤ ε} Σ d(f(x̃), f(x)).

    Reference quirks kept: EST *trains* BatchNorm on 224x224 backbones (the reference's
    ``is_advtrain`` flag skips its BN freezing), unlike ACT/SES/HM; and the shift is
    measured as torch's ``pairwise_distance`` does, ‖a − b + 1e-6‖, which starts every
    image's shift in the same direction (option ``pairwise_eps``; 0 gives the exact
    distance, a markedly more robust EST: see :func:`robrank.defenses.inner.embedding_shift`).
    """

    trains_batchnorm = True

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.options["pairwise_eps"] = pairwise_eps_option(self.name, self.options["pairwise_eps"])

    def loss(self, model: nn.Module, criterion: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        metric = model.metric
        with torch.no_grad():  # benign loss, logged only (the reference computes it in the step's mode)
            benign = criterion(model(images), labels)
        history: list[float] = []
        with inner_eval(model):
            adversarial = embedding_shift(
                model, images, metric, eps=self.eps, alpha=self.alpha, steps=self.pgditer, history=history,
                pairwise_eps=self.options["pairwise_eps"],
            )
        loss = criterion(model(adversarial), labels)
        # the objective is -Σ shift before each step; its last value is the shift one step before the end
        shift = -history[-1] / images.shape[0]
        self.logs = {"loss_benign": float(benign), "loss_adv": float(loss.detach()), "embshift": shift}
        return loss
