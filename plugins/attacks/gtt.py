"""Greedy top-1 translocation GTT (simplified from QAIR): push the clean top-1 result out of the top.

Selection: idm = the clean top-1 result other than the query's own slot (idum = top-2 is
selected too, but unused, as in the reference). Objective: the QA- hinge with M = 1 on idm,
mean over the gallery of relu(d(q, x) - d(q, idm)). Metrics (percent): ``ID-Retain@1``
(idm is still the top-1) and ``retain@4`` (idm is still in the top 4).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from robrank.plugin_api import (
    Attack,
    BatchContext,
    Selection,
    kth_margin,
    retained,
)

from .declarations import GTTDeclaration
from .query import query_loss


#: the top-k the ERS column of GTT measures retention in
RETAIN_K = 4


@dataclass
class TopSelection(Selection):
    #: ``[B, 1]``: each query's clean top-1 gallery slot; ``[B]``: its clean second
    match: torch.Tensor | None = None
    second: torch.Tensor | None = None


class GreedyTop1Translocation(GTTDeclaration, Attack):
    selection = TopSelection

    def select(self, ctx: BatchContext) -> None:
        masked = ctx.clean_dist.scatter(1, ctx.self_slot.view(-1, 1), float("inf"))
        top2 = masked.topk(min(2, masked.shape[1]), dim=1, largest=False).indices
        ctx.sel.match = top2[:, :1]
        ctx.sel.second = top2[:, -1]

    def objective(self, emb: torch.Tensor, ctx: BatchContext, step: int | None) -> torch.Tensor:
        return query_loss(ctx.dist(emb), ctx.sel.match, "-", self.exclude_slot(ctx))

    def surrogate(self, emb: torch.Tensor, ctx: BatchContext, step: int | None) -> torch.Tensor:
        """d(4th nearest other item) − d(clean top-1): negative while the top-1 is retained in the top 4."""
        return kth_margin(ctx.dist(emb), ctx.sel.match[:, 0], ctx.self_slot, RETAIN_K)

    def success(self) -> dict[str, int]:
        return {"retain@4": -1, "ID-Retain@1": -1}

    def summarize(self, emb, dist, ctx, adversarial):
        idm = ctx.sel.match[:, 0]
        return {
            "ID-Retain@1": 100.0 * retained(dist, idm, 1, ctx.self_slot),
            "retain@4": 100.0 * retained(dist, idm, RETAIN_K, ctx.self_slot),
        }
