"""Learning-to-misrank LTM (arXiv 2004.04199, Eq. 1): make every positive farther than every negative.

Objective (minimised), per query q with label y: relu(max_{x: y_x != y} d(q, x) -
min_{x: y_x = y} d(q, x)). Metric ``r@1`` in percent: whether the nearest gallery item
other than the query's own slot still has label y.

Reference quirk (kept under reference semantics): the own slot was meant to be removed from
the positives with a non-in-place ``scatter`` whose result was discarded, so the minimum
over positives includes d(q~, clean self). Fixed semantics remove it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from robrank.plugin_api import (
    Attack,
    BatchContext,
    label_margin,
    top1_label_match,
)

from .declarations import LTMDeclaration
from .es import LabelSelection, label_mask, label_temperature


@dataclass
class MisrankSelection(LabelSelection):
    #: ``[B, N]``: gallery items that are not negatives (the query's class) / not positives
    not_negative: torch.Tensor | None = None
    not_positive: torch.Tensor | None = None


class LearningToMisrank(LTMDeclaration, Attack):
    selection = MisrankSelection

    def select(self, ctx: BatchContext) -> None:
        same = ctx.gallery.labels.view(1, -1) == ctx.labels.view(-1, 1)
        ctx.sel.not_negative = same.clone()
        if not ctx.reference:
            same = same.scatter(1, ctx.self_slot.view(-1, 1), False)
        ctx.sel.not_positive = ~same

    def objective(self, emb: torch.Tensor, ctx: BatchContext, step: int | None) -> torch.Tensor:
        dist = ctx.dist(emb)
        hardest_negative = dist.masked_fill(ctx.sel.not_negative, float("-inf")).amax(dim=1)
        easiest_positive = dist.masked_fill(ctx.sel.not_positive, float("inf")).amin(dim=1)
        return (hardest_negative - easiest_positive).clamp(min=0)

    def surrogate(self, emb: torch.Tensor, ctx: BatchContext, step: int | None) -> torch.Tensor:
        return label_margin(ctx.dist(emb), label_mask(ctx), ctx.self_slot, label_temperature(ctx))

    def success(self) -> dict[str, int]:
        return {"r@1": -1}

    def summarize(self, emb, dist, ctx, adversarial):
        return {"r@1": 100.0 * top1_label_match(dist, ctx.gallery.labels, ctx.labels, ctx.self_slot)}
