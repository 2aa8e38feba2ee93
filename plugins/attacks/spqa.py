"""Semantics-preserving query attack SPQA+/SPQA- (M).

A QA± attack that also keeps M_GT = 5 "ground-truth" items near the top of the ranking, so
the perturbed query still *looks* like itself to a retrieval user. Ground truth: for SPQA+ the
5 nearest neighbours of the clean query (itself excluded); for SPQA- the 5 nearest of the
top-1% items not chosen as targets. Objective: L_QA± + xi * L_QA+(ground truth), with
xi = min(exp(k * L_sp), 1e9) recomputed every PGD step from the current L_sp (1e7 when
L_sp is NaN) and carrying no gradient. k is the spec field ``rate``; left out, it is the
dataset's reference rate, which each dataset record declares in its ``attack_defaults``
(the reference picked it by a substring of the dataset name), and 2e4 for a dataset that
declares none. Metrics ``prank`` (targets) and ``GTprank`` (ground truth).

Reference semantics compute xi from the *batch mean* L_sp, as the reference did, which
couples the samples of a batch; fixed semantics compute one xi per sample.
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import torch

from robrank.plugin_api import (
    Attack,
    BatchContext,
    nearest_excluding_self,
    query_prank,
)

from .declarations import SPQADeclaration
from .query import QuerySelection, query_loss, select_query_targets

M_GT = 5
XI_MAX = 1e9
XI_NAN = 1e7
#: the reference's rate for a dataset it did not know (the spec field ``rate`` left unset)
XI_RATE_DEFAULT = 2e4


def adaptive_xi(loss_sp: torch.Tensor, rate: float) -> torch.Tensor:
    """min(exp(rate * L), 1e9) without overflow (exp of a clamped exponent); 1e7 for NaN."""
    scaled = loss_sp.detach() * rate
    xi = torch.exp(scaled.clamp(max=math.log(XI_MAX)))
    return torch.where(torch.isnan(scaled), torch.full_like(xi, XI_NAN), xi)


@dataclass
class SemanticSelection(QuerySelection):
    #: ``[B, 5]``: the query's own nearest neighbours, kept near the top
    truth: torch.Tensor | None = None


class SPQueryAttack(SPQADeclaration, Attack):
    selection = SemanticSelection

    @property
    def xi_rate(self) -> float:
        return XI_RATE_DEFAULT if self.rate is None else float(self.rate)

    def distance_width(self) -> int:
        return self.M + 5

    def select(self, ctx: BatchContext) -> None:
        if self.pm == "+":
            targets, _ = select_query_targets(self, ctx, "+", self.M)
            truth = nearest_excluding_self(ctx.clean_dist, M_GT, ctx.self_slot, ctx.reference)
        else:
            targets, rest = select_query_targets(self, ctx, "-", self.M, extra=M_GT)
            truth = rest[:, :M_GT]
        ctx.sel.candidates, ctx.sel.truth = targets, truth

    def loss_from_dist(self, dist: torch.Tensor, ctx: BatchContext) -> torch.Tensor:
        exclude = self.exclude_slot(ctx)
        loss_qa = query_loss(dist, ctx.sel.candidates, self.pm, exclude)
        loss_sp = query_loss(dist, ctx.sel.truth, "+", exclude)
        xi = adaptive_xi(loss_sp.mean() if ctx.reference else loss_sp, self.xi_rate)
        return loss_qa + xi * loss_sp

    def objective(self, emb: torch.Tensor, ctx: BatchContext, step: int | None) -> torch.Tensor:
        return self.loss_from_dist(ctx.dist(emb), ctx)

    def success(self) -> dict[str, int]:
        # the targets' rank; the ground truth's rank is the constraint, not the goal
        return {"prank": -1 if self.pm == "+" else 1}

    def summarize(self, emb, dist, ctx, adversarial):
        exclude = self.exclude_slot(ctx)
        return {
            "loss": self.loss_from_dist(dist, ctx),
            "prank": 100.0 * query_prank(dist, ctx.sel.candidates, exclude, ties_ahead=self.pm == "-"),
            "GTprank": 100.0 * query_prank(dist, ctx.sel.truth, exclude),
        }
