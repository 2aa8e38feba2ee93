"""Greedy top-1 misrank GTM: pull the query onto the nearest item of another class.

Selection, relative to the label of the clean top-1 result (own slot excluded): emm = nearest
"matching" item (same label as that top-1), emu = nearest "unmatching" item. Objective:
d(q, emu) (only the unmatch term is active, as in the reference). Metric ``r@1`` (percent).

Reference quirk (kept under reference semantics): emm/emu are argmin positions *inside the
masked subset* of matching/unmatching items, then used as *global* gallery indices, so emu
is effectively an arbitrary gallery item. Fixed semantics use the true nearest items.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from robrank.plugin_api import Attack, BatchContext, label_margin, paired, top1_label_match

from .declarations import GTMDeclaration

from .es import LabelSelection, label_mask, label_temperature


def greedy_pairs(dist: torch.Tensor, labels: torch.Tensor, self_slot: torch.Tensor, reference: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(matching, unmatching) gallery indices per query, as GTM selects them."""
    masked = dist.scatter(1, self_slot.view(-1, 1), float("inf"))
    top1 = masked.argmin(dim=1)
    match = labels.view(1, -1) == labels[top1].view(-1, 1)
    inf = torch.full_like(masked, float("inf"))
    nearest_match = torch.where(match, masked, inf).argmin(dim=1)
    nearest_unmatch = torch.where(~match, masked, inf).argmin(dim=1)
    if not reference:
        return nearest_match, nearest_unmatch
    # position of the true nearest item within its subset, in gallery order (the reference's index)
    in_match = match.to(torch.int64).cumsum(dim=1) - 1
    in_unmatch = (~match).to(torch.int64).cumsum(dim=1) - 1
    return in_match.gather(1, nearest_match.view(-1, 1))[:, 0], in_unmatch.gather(1, nearest_unmatch.view(-1, 1))[:, 0]


@dataclass
class GreedyPairSelection(LabelSelection):
    #: ``[B]`` gallery slots: each query's nearest same-class item and nearest other-class item
    match: torch.Tensor | None = None
    unmatch: torch.Tensor | None = None
    #: ``[B, D]``: the other-class items' embeddings the query is pulled onto
    unmatch_emb: torch.Tensor | None = None


class GreedyTop1Misrank(GTMDeclaration, Attack):
    selection = GreedyPairSelection

    def select(self, ctx: BatchContext) -> None:
        match, unmatch = greedy_pairs(ctx.clean_dist, ctx.gallery.labels, ctx.self_slot, ctx.reference)
        ctx.sel.match, ctx.sel.unmatch = match, unmatch
        ctx.sel.unmatch_emb = ctx.gallery.embeddings[unmatch]

    def objective(self, emb: torch.Tensor, ctx: BatchContext, step: int | None) -> torch.Tensor:
        return paired(emb, ctx.sel.unmatch_emb, ctx.metric)

    def surrogate(self, emb: torch.Tensor, ctx: BatchContext, step: int | None) -> torch.Tensor:
        return label_margin(ctx.dist(emb), label_mask(ctx), ctx.self_slot, label_temperature(ctx))

    def success(self) -> dict[str, int]:
        return {"r@1": -1}

    def summarize(self, emb, dist, ctx, adversarial):
        return {"r@1": 100.0 * top1_label_match(dist, ctx.gallery.labels, ctx.labels, ctx.self_slot)}
