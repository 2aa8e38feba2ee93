"""Embedding shift ES (untargeted): push each embedding as far from its clean self as possible.

Objective (minimised): -d(f(x~), f(x)); at the first iteration the clean target gets +1e-7
so the gradient of a zero distance is defined (as in the reference). Under reference
semantics E/N distances are torch's ``pairwise_distance``, ‖a − b + 1e-6‖, as the
reference computed them: the offset outweighs the 1e-7 at the first step and so sets the
direction every query's shift starts in (the all-ones direction; the exact distance
starts along its opposite). Fixed semantics use the exact distance. Metrics: ``r@1``,
``r@10``, ``r@100`` in **percent** (the first same-label gallery item's 0-based rank after
removing the query's own gallery slot), ``loss`` (the objective, per sample) and, on the
adversarial side, ``embshift``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from robrank.plugin_api import (
    REFERENCE_PAIRWISE_EPS,
    Attack,
    BatchContext,
    Selection,
    first_match_rank,
    label_margin,
    paired,
    recall_at,
    temperature,
)

from .declarations import ESDeclaration

#: the reference's offset that avoids a zero gradient at the clean point
START_OFFSET = 1e-7


@dataclass
class LabelSelection(Selection):
    """The smooth label surrogates' state, filled on first use (:func:`label_mask`, :func:`label_temperature`)."""

    #: ``[B, N]``: gallery items of each query's class
    same_label: torch.Tensor | None = None
    #: ``[B, 1]``: each query's soft-margin temperature
    label_tau: torch.Tensor | None = None


def label_mask(ctx: BatchContext) -> torch.Tensor:
    """``[B, N]``: gallery items of each query's class (cached in the selection)."""
    if ctx.sel.same_label is None:
        ctx.sel.same_label = ctx.gallery.labels.view(1, -1) == ctx.labels.view(-1, 1)
    return ctx.sel.same_label


def label_temperature(ctx: BatchContext) -> torch.Tensor:
    """The queries' soft-margin temperature from their clean distances (cached in the selection)."""
    if ctx.sel.label_tau is None:
        ctx.sel.label_tau = temperature(ctx.clean_dist)
    return ctx.sel.label_tau


class EmbeddingShift(ESDeclaration, Attack):
    selection = LabelSelection

    def objective(self, emb: torch.Tensor, ctx: BatchContext, step: int | None) -> torch.Tensor:
        target = ctx.clean + START_OFFSET if step == 0 else ctx.clean
        # reference: at the first step a − b = −1e-7 and the +1e-6 wins, so the shift starts along +1,
        # as in the reference and in the EST training it defends against; exact, it starts along −1
        return -paired(emb, target, ctx.metric, pairwise_eps=REFERENCE_PAIRWISE_EPS if self.reference else 0.0)

    def surrogate(self, emb: torch.Tensor, ctx: BatchContext, step: int | None) -> torch.Tensor:
        """The smooth top-1 label margin (:func:`~robrank.attacks.surrogates.label_margin`): aims at R@1, not the shift."""
        return label_margin(ctx.dist(emb), label_mask(ctx), ctx.self_slot, label_temperature(ctx))

    def success(self) -> dict[str, int]:
        return {"r@1": -1, "embshift": 1}

    def summarize(self, emb, dist, ctx, adversarial):
        rank = first_match_rank(dist, ctx.gallery.labels, ctx.labels, ctx.self_slot)
        return {
            "loss": self.objective(emb, ctx, None),
            "r@1": 100.0 * recall_at(rank, 1),
            "r@10": 100.0 * recall_at(rank, 10),
            "r@100": 100.0 * recall_at(rank, 100),
        }
