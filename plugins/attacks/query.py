"""Query attack QA+/QA- (M): perturb a query to move M candidates up/down its ranking.

Selection: QA+ draws M candidates uniformly from the whole gallery; QA- takes the first M of
a random permutation of the query's top-1% nearest gallery items (its own slot excluded).
Objective (minimised), per query q: mean over candidates c_m and gallery items x of
relu(d(q, c_m) - d(q, x)) for QA+ or relu(d(q, x) - d(q, c_m)) for QA-. Metric ``prank``:
mean_m (0-based position of c_m in q's ranking) / N; items tied with c_m rank ahead of it for
QA- and behind it for QA+ (ties never help the defender).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from robrank.plugin_api import (
    STREAM_CANDIDATES,
    STREAM_PERMUTATION,
    Attack,
    BatchContext,
    Selection,
    nearest_excluding_self,
    permutation,
    query_prank,
    randint,
    soft_rank,
    temperature,
    top_fraction,
)

from .declarations import QADeclaration


def query_loss(dist: torch.Tensor, targets: torch.Tensor, pm: str, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Per-query QA hinge ``[B]`` from the query's distance row ``[B, N]`` and targets ``[B, M]``.

    ``exclude`` leaves one gallery slot (the query's own clean embedding) out of the mean.
    """
    target = dist.gather(1, targets)  # d(q, c_m), [B, M]
    if pm == "+":
        margin = target.unsqueeze(2) - dist.unsqueeze(1)
    else:
        margin = dist.unsqueeze(1) - target.unsqueeze(2)
    total = margin.clamp(min=0).sum(dim=(1, 2))
    size = dist.shape[1]
    if exclude is not None:
        own = dist.gather(1, exclude.view(-1, 1))  # [B, 1]
        total = total - (target - own if pm == "+" else own - target).clamp(min=0).sum(dim=1)
        size -= 1
    return total / (size * targets.shape[1])


def query_soft_rank(dist: torch.Tensor, targets: torch.Tensor, pm: str, tau: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """The smooth QA objective ``[B]``: the targets' soft percentile rank (negated for QA-).

    ``tau`` ``[B, 1]`` is the query's temperature (:func:`~robrank.attacks.surrogates.temperature`).
    """
    own = None if exclude is None else dist.gather(1, exclude.view(-1, 1))
    rank = soft_rank(dist.gather(1, targets), dist, tau.unsqueeze(-1), own)
    return rank if pm == "+" else -rank


def select_query_targets(attack: Attack, ctx: BatchContext, pm: str, count: int, extra: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """QA+/QA- targets ``[B, count]``; for QA-, also the permuted top-1% list and permutation.

    ``extra`` reserves that many further items of the top-1% list (SPQA- ground truth).
    Returns (targets, remaining) where ``remaining`` are the unchosen top-1% items in
    ascending distance order (None for QA+).
    """
    n = len(ctx.gallery)
    if pm == "+":
        return randint(ctx.seed, STREAM_CANDIDATES, ctx.index, count, n, exclude=attack.exclude_slot(ctx)), None
    top = nearest_excluding_self(ctx.clean_dist, top_fraction(n, minimum=count + extra), ctx.self_slot, ctx.reference)
    order = permutation(ctx.seed, STREAM_PERMUTATION, ctx.index, top.shape[1])
    targets = top.gather(1, order[:, :count])
    rest = order[:, count:].sort(dim=1).values  # sorted positions = nearest first
    return targets, top.gather(1, rest)


@dataclass
class QuerySelection(Selection):
    #: ``[B, M]``: the gallery slots of the candidates moved in each query's ranking
    candidates: torch.Tensor | None = None
    #: ``[B, 1]``: each query's soft-rank temperature
    tau: torch.Tensor | None = None


class QueryAttack(QADeclaration, Attack):
    selection = QuerySelection

    def distance_width(self) -> int:
        return self.M + 5

    def select(self, ctx: BatchContext) -> None:
        ctx.sel.candidates, _ = select_query_targets(self, ctx, self.pm, self.M)
        ctx.sel.tau = temperature(ctx.clean_dist)

    def loss_from_dist(self, dist: torch.Tensor, ctx: BatchContext) -> torch.Tensor:
        return query_loss(dist, ctx.sel.candidates, self.pm, self.exclude_slot(ctx))

    def objective(self, emb: torch.Tensor, ctx: BatchContext, step: int | None) -> torch.Tensor:
        return self.loss_from_dist(ctx.dist(emb), ctx)

    def surrogate(self, emb: torch.Tensor, ctx: BatchContext, step: int | None) -> torch.Tensor:
        return query_soft_rank(ctx.dist(emb), ctx.sel.candidates, self.pm, ctx.sel.tau, self.exclude_slot(ctx))

    def success(self) -> dict[str, int]:
        return {"prank": -1 if self.pm == "+" else 1}

    def summarize(self, emb, dist, ctx, adversarial):
        return {
            "loss": self.loss_from_dist(dist, ctx),
            "prank": 100.0 * query_prank(dist, ctx.sel.candidates, self.exclude_slot(ctx), ties_ahead=self.pm == "-"),
        }
