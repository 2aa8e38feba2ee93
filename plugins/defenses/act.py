"""ACT, Anti-Collapse Triplet (RobRank; reference ``defenses/pnp.py::pnp_training_step``, ``r*p``).

1. Benign forward (eval mode, no gradient) and triplets (a, p, n) from the loss's own miner.
2. Inner attack: perturb the positive and negative images *jointly* (anchors untouched) to
   minimise mean d(f(p̃), f(ñ)) — collapse each positive onto its negative.
3. Loss = the loss kernel ``raw(f(a), f(p̃), f(ñ))`` in train mode, with a fresh benign
   forward of the anchors (the reference since commit d20df3a, issue #7).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robrank.plugin_api import (
    AdversarialDefense,
    ConfigError,
    check_family,
    collapse_pairs,
    embed_for_metric,
    inner_eval,
    paired,
    with_margin,
)

from . import FAMILIES
from .declarations import ACTDeclaration



def reference_miner_margin(metric: str) -> float:
    """The margin the reference's ACT handed its miner: 0.2 for C, 1.0 for E *and* N (quirk)."""
    return 0.2 if metric == "C" else 1.0


class ACT(ACTDeclaration, AdversarialDefense):
    """Adversarial training against the positive/negative collapse attack.

    Options: ``miner_margin`` = ``"reference"`` (default: the quirk above, which changes
    only the semihard miner's rule for N), ``"loss"`` (the loss's own miner unchanged) or a
    number. BatchNorm stays frozen on 224x224 backbones (reference flag ``is_advtrain_pnp``).
    """

    trains_batchnorm = False

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        margin = self.options["miner_margin"]
        if margin not in ("reference", "loss"):
            try:
                self.options["miner_margin"] = float(margin)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"defense 'act': miner_margin must be 'reference', 'loss' or a number, got {margin!r}"
                ) from None

    def check(self, loss_record: Any, metric: str) -> None:
        check_family(self.name, loss_record, FAMILIES)

    def _miner(self, criterion: nn.Module, metric: str) -> Any:
        miner = getattr(criterion, "miner", None)
        if miner is None:
            who = type(criterion).__name__
            raise ConfigError(f"defense 'act' needs a loss that mines triplets; {who} has no miner")
        setting = self.options["miner_margin"]
        if setting == "loss":
            return miner
        margin = reference_miner_margin(metric) if setting == "reference" else float(setting)
        return with_margin(miner, margin)

    def perturb(
        self,
        model: nn.Module,
        criterion: nn.Module,
        images: torch.Tensor,
        labels: torch.Tensor,
        history: list[float] | None = None,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """The inner attack: ((anc, pos, neg) indices, adversarial positives, negatives, benign raw embeddings)."""
        metric = model.metric
        with inner_eval(model):
            with torch.no_grad():
                benign_raw = model(images)
            anc, pos, neg = self._miner(criterion, metric)(embed_for_metric(benign_raw, metric), labels)
            adv_pos, adv_neg = collapse_pairs(
                model, images[pos], images[neg], metric,
                eps=self.eps, alpha=self.alpha, steps=self.pgditer, history=history,
            )
        return (anc, pos, neg), adv_pos, adv_neg, benign_raw

    def loss(self, model: nn.Module, criterion: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        metric = model.metric
        (anc, pos, neg), adv_pos, adv_neg, benign_raw = self.perturb(model, criterion, images, labels)
        with torch.no_grad():  # logged only, as the reference's loss_orig
            benign_emb = embed_for_metric(benign_raw, metric)
            benign = criterion.raw(benign_emb[anc], benign_emb[pos], benign_emb[neg])
        count = anc.numel()
        emb = embed_for_metric(model(torch.cat([images[anc], adv_pos, adv_neg])), metric)
        loss = criterion.raw(emb[:count], emb[count : 2 * count], emb[2 * count :])
        with torch.no_grad():
            collapse = paired(emb[count : 2 * count], emb[2 * count :], metric).mean()
        self.logs = {"loss_benign": float(benign), "loss_adv": float(loss.detach()), "d_pn_adv": float(collapse)}
        return loss
