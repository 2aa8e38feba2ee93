"""Targeted mismatch attack TMA (Tolias et al., ICCV'19): pull the query onto a random item.

Selection: one gallery item t drawn uniformly per query. Objective: 1 - cos(q, t) for every
metric. Metric ``Cosine-SIM`` = cos(q, t) (higher after the attack = less robust).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from robrank.plugin_api import (
    STREAM_TARGET,
    Attack,
    BatchContext,
    Selection,
    paired,
    randint,
)

from .declarations import TMADeclaration


@dataclass
class TargetSelection(Selection):
    #: ``[B]`` gallery slots of the random targets, and their unit embeddings ``[B, D]``
    target: torch.Tensor | None = None
    target_emb: torch.Tensor | None = None


class TargetedMismatch(TMADeclaration, Attack):
    selection = TargetSelection

    def select(self, ctx: BatchContext) -> None:
        target = randint(ctx.seed, STREAM_TARGET, ctx.index, 1, len(ctx.gallery), exclude=self.exclude_slot(ctx))[:, 0]
        ctx.sel.target = target
        ctx.sel.target_emb = F.normalize(ctx.gallery.embeddings[target], dim=-1)

    def objective(self, emb: torch.Tensor, ctx: BatchContext, step: int | None) -> torch.Tensor:
        return paired(F.normalize(emb, dim=-1), ctx.sel.target_emb, "C")

    # the objective, 1 - cos, is already the smooth form of the metric: no separate surrogate
    def success(self) -> dict[str, int]:
        return {"Cosine-SIM": 1}

    def summarize(self, emb, dist, ctx, adversarial):
        return {"Cosine-SIM": 1.0 - self.objective(emb, ctx, None)}
