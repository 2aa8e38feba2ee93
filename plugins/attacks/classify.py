"""PGD against a classifier (the reference's ``advclass``): clean and robust accuracy.

The model's output is its logits (a classifier backbone trained with ``ce``). Untargeted PGD
maximises the cross-entropy of the true label; targeted PGD (``targeted=1``) minimises the
cross-entropy of a target label drawn uniformly among the other classes, reproducibly per
sample (seed and dataset index, like every robrank selection). The loop is the ranking
attacks' own (:meth:`robrank.attacks.Attack.perturb`), so ``nes=1``, random starts and
transfer from a surrogate classifier apply unchanged. Metrics (percent): ``accuracy`` and
``loss`` (cross-entropy of the true label) on both sides; the targeted attack adds
``target``, the percentage classified as their target.
"""
from __future__ import annotations

from dataclasses import dataclass

from typing import Any

import torch
import torch.nn.functional as F

from robrank.plugin_api import (
    Attack,
    BatchContext,
    ConfigError,
    Selection,
    randint,
)

from .declarations import UNTARGETED_REPORTS, PGDDeclaration

#: selection stream of the targeted attack's target class (apart from the ranking attacks' streams)
STREAM_TARGET_CLASS = 101


@dataclass
class ClassSelection(Selection):
    #: ``[B]``: the random other class a targeted attack pulls each image to
    target: torch.Tensor | None = None


class ClassifierPGD(PGDDeclaration, Attack):
    selection = ClassSelection

    targeted: bool

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        if not self.targeted:
            self.reports = UNTARGETED_REPORTS

    def select(self, ctx: BatchContext) -> None:
        classes = ctx.clean.shape[1]
        if ctx.labels.numel() and int(ctx.labels.max()) >= classes:
            raise ConfigError(f"attack {self.name}: the model outputs {classes} values but a label is {int(ctx.labels.max())}; attack a classifier run")
        if self.targeted:
            ctx.sel.target = randint(ctx.seed, STREAM_TARGET_CLASS, ctx.index, 1, classes, exclude=ctx.labels)[:, 0]

    def objective(self, emb: torch.Tensor, ctx: BatchContext, step: int | None) -> torch.Tensor:
        if self.targeted:
            return F.cross_entropy(emb, ctx.sel.target, reduction="none")
        return -F.cross_entropy(emb, ctx.labels, reduction="none")

    # APGD keeps, and the worst case picks, the iterate that misclassifies (or hits the
    # target), not merely the one with the largest cross-entropy
    def success(self) -> dict[str, int]:
        return {"target": 1, "accuracy": -1} if self.targeted else {"accuracy": -1}

    def summarize(self, emb, dist, ctx, adversarial):
        # ties never help the defender: correct only when the true class alone has the top
        # logit; a target tied for the top counts as hit
        out = {
            "accuracy": 100.0 * _on_top(emb, ctx.labels, ties_win=False).double(),
            "loss": F.cross_entropy(emb, ctx.labels, reduction="none"),
        }
        if self.targeted:
            out["target"] = 100.0 * _on_top(emb, ctx.sel.target, ties_win=True).double()
        return out


def _on_top(logits: torch.Tensor, label: torch.Tensor, ties_win: bool) -> torch.Tensor:
    """Whether ``label``'s logit is above every other one (``ties_win``: or equal to the largest)."""
    own = logits.gather(1, label.view(-1, 1))
    others = logits.scatter(1, label.view(-1, 1), float("-inf")).amax(dim=1, keepdim=True)
    return (own >= others if ties_win else own > others).view(-1)
