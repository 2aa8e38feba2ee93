"""The candidate attack CA+/CA- (W): perturb a candidate to move it up/down the rankings of W queries.

It is a public base (:mod:`robrank.plugin_api`): the bundled ``CA`` only names it, and a
third-party attack that changes one part of it (MICA changes the update rule) subclasses it.

Selection: CA+ draws W queries uniformly from the whole gallery (the reference's
``SAMPLE=global``); CA- draws W queries with replacement from the candidate's top-1% nearest
gallery items, its own slot excluded. Objective (minimised), per candidate c:
mean over queries q_j and gallery items x of relu(d(c, q_j) - d(x, q_j)) for CA+ (rank c
above every x) or relu(d(x, q_j) - d(c, q_j)) for CA-. Metric ``prank``:
mean_j #{x : d(x, q_j) < d(c, q_j)} / N (about 0.5 clean for CA+, 0.01 for CA-); for CA- the
items tied with the candidate count as ahead of it (ties never help the defender).

The query-to-gallery distances are constant during the attack, so they are computed once at
selection time and a PGD step only adds a [B, W, N] comparison to the model's cost.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..distances import paired, pairwise
from .base import Attack, BatchContext, Selection
from .declaration import CandidateAttackDeclaration
from .metrics import candidate_prank
from .selection import STREAM_QUERIES, nearest_excluding_self, randint, top_fraction
from .surrogates import soft_rank, temperature


@dataclass
class CandidateSelection(Selection):
    """CA's choice for each candidate: W queries and the distances its objective compares against."""

    #: ``[B, W]`` gallery slots of the queries and ``[B, W, D]`` their embeddings
    queries: torch.Tensor | None = None
    query_emb: torch.Tensor | None = None
    #: ``[B, W, N]`` distances from every gallery item to each query (own slot: the candidate's clean one)
    gallery_to_query: torch.Tensor | None = None
    #: ``[B, W]``: the clean candidate's distances to its queries (its own slot's column)
    own_to_query: torch.Tensor | None = None
    #: the same under fixed semantics only, where the own slot is left out of the ranking
    self_to_query: torch.Tensor | None = None
    #: the gallery distances sorted per query, and their float64 prefix sums ``[B, W, N + 1]``
    sorted: torch.Tensor | None = None
    prefix: torch.Tensor | None = None
    #: each query's soft-rank temperature (from its gallery distances)
    tau: torch.Tensor | None = None


class CandidateAttack(CandidateAttackDeclaration, Attack):
    """CA's selection, objective, surrogate and metric; a subclass gives it a ``name`` to register.

    Its fields (``pm``, ``W``, reports, display) are declared on
    :class:`~robrank.attacks.declaration.CandidateAttackDeclaration`, the torch-free half a
    subclass's own declaration extends.
    """

    selection = CandidateSelection

    def distance_width(self) -> int:
        return max(self.W, super().distance_width())

    def select(self, ctx: BatchContext) -> None:
        gallery = ctx.gallery
        n, w = len(gallery), self.W
        exclude = self.exclude_slot(ctx)
        if self.pm == "+":
            queries = randint(ctx.seed, STREAM_QUERIES, ctx.index, w, n, exclude=exclude)
        else:
            top = nearest_excluding_self(ctx.clean_dist, top_fraction(n), ctx.self_slot, ctx.reference)
            pick = randint(ctx.seed, STREAM_QUERIES, ctx.index, w, top.shape[1])
            queries = top.gather(1, pick)
        q_emb = gallery.embeddings[queries]  # [B, W, D]
        to_queries = pairwise(q_emb.reshape(-1, q_emb.shape[-1]), gallery.embeddings, ctx.metric)
        ctx.sel.queries = queries
        ctx.sel.query_emb = q_emb
        to_queries = to_queries.view(q_emb.shape[0], w, n)
        # the own slot's column is recomputed with the very op that measures the candidate, so
        # the clean candidate ties its own slot exactly instead of by rounding noise
        slot = ctx.self_slot.view(-1, 1, 1).expand(-1, w, 1)
        own = paired(gallery.embeddings[ctx.self_slot].unsqueeze(1), q_emb, ctx.metric)
        ctx.sel.gallery_to_query = to_queries.scatter(2, slot, own.unsqueeze(2))
        ctx.sel.own_to_query = own
        if exclude is not None:
            ctx.sel.self_to_query = own
        # sorted distances and their prefix sums turn the N-term hinge into O(log N) per step
        ordered = ctx.sel.gallery_to_query.sort(dim=2).values
        prefix = torch.zeros(*ordered.shape[:2], n + 1, dtype=torch.float64, device=ordered.device)
        prefix[:, :, 1:] = ordered.to(torch.float64).cumsum(dim=2)
        ctx.sel.sorted, ctx.sel.prefix = ordered.contiguous(), prefix
        ctx.sel.tau = temperature(ctx.sel.gallery_to_query)

    def _to_queries(self, emb: torch.Tensor, ctx: BatchContext) -> torch.Tensor:
        return paired(emb.unsqueeze(1), ctx.sel.query_emb, ctx.metric)  # [B, W]

    def objective(self, emb: torch.Tensor, ctx: BatchContext, step: int | None) -> torch.Tensor:
        """mean_{j,x} relu(±(d(c, q_j) - d(x, q_j))), evaluated exactly from sorted d(x, q_j).

        With k = #{x: d(x, q_j) < a} for a = d(c, q_j) and P the prefix sums of the sorted
        distances, sum_x relu(a - d_x) = k*a - P[k] and sum_x relu(d_x - a) = (P[N] - P[k']) -
        (N - k')*a with k' = #{x: d_x <= a}; k, P are constants of the step, so autograd sees
        the same value and the same (sub)gradient as the elementwise hinge (ties counted as
        torch's clamp counts them) at O(log N) instead of O(N) per candidate and query.
        """
        cand = self._to_queries(emb, ctx)  # d(c, q_j), [B, W]
        ordered, prefix = ctx.sel.sorted, ctx.sel.prefix
        size = ordered.shape[2]
        key = cand.detach().unsqueeze(2).to(ordered.dtype)
        wide = cand.to(torch.float64)  # prefix sums are float64: no cancellation at large N
        if self.pm == "+":
            k = torch.searchsorted(ordered, key, right=False)
            total = k.squeeze(2) * wide - prefix.gather(2, k).squeeze(2)
        else:
            k = torch.searchsorted(ordered, key, right=True)
            total = (prefix[:, :, -1:] - prefix.gather(2, k)).squeeze(2) - (size - k.squeeze(2)) * wide
        total = total.to(cand.dtype)
        if ctx.sel.self_to_query is not None:
            own = ctx.sel.self_to_query
            total = total - (cand - own if self.pm == "+" else own - cand).clamp(min=0)
            size -= 1
        return total.sum(dim=1) / (size * ordered.shape[1])

    def surrogate(self, emb: torch.Tensor, ctx: BatchContext, step: int | None) -> torch.Tensor:
        """The soft percentile rank of the candidate (:func:`~robrank.attacks.surrogates.soft_rank`), raised by CA-."""
        rank = soft_rank(self._to_queries(emb, ctx), ctx.sel.gallery_to_query, ctx.sel.tau, ctx.sel.self_to_query)
        return rank if self.pm == "+" else -rank

    def success(self) -> dict[str, int]:
        return {"prank": -1 if self.pm == "+" else 1}

    def summarize(self, emb, dist, ctx, adversarial):
        cand = self._to_queries(emb, ctx)
        # ties count for the attacker: CA- (pushing the candidate down) ranks tied items ahead
        prank = candidate_prank(cand, ctx.sel.gallery_to_query, ctx.sel.self_to_query,
                                ties_ahead=self.pm == "-", own_to_query=ctx.sel.own_to_query)
        return {"loss": self.objective(emb, ctx, None), "prank": 100.0 * prank}
