"""Per-sample ranking metrics of the attacks, vectorised over the batch.

The reference computed these one query at a time (``argsort`` per row in numpy), which is
what made a CPU swipe take hours. Every function here returns one value per perturbed
object, so the runner can sum them and average over *samples* (not over batch means).

Ties are resolved against the defender: an item at exactly the distance of the one the
attack moves counts as ahead of it when the attack wants it pushed down, and behind it when
the attack wants it pulled up, so a defense that produces ties (quantised, saturated or
collapsed embeddings) never gains robustness from them. Without ties every rank equals the
reference's argsort-of-argsort position.
"""
from __future__ import annotations

import torch


def _closer(others: torch.Tensor, target: torch.Tensor, ties_ahead: bool) -> torch.Tensor:
    """``others < target`` (ties behind) or ``others <= target`` (ties ahead), as counts' dtype source."""
    return others <= target if ties_ahead else others < target


def query_rank(
    dist: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None = None, *, ties_ahead: bool = False
) -> torch.Tensor:
    """``[B, M]``: 0-based position of each target in its query's ranking ``dist`` (``[B, N]``).

    ``exclude`` (``[B]``) is a gallery slot left out of every ranking (the query's own).
    ``ties_ahead``: items tied with a target rank ahead of it (the attack pushes targets
    down); else behind it (the attack pulls them up). The target never counts itself.
    """
    target_dist = dist.gather(1, targets)  # [B, M]
    rank = _closer(dist.unsqueeze(1), target_dist.unsqueeze(2), ties_ahead).sum(dim=2)
    if ties_ahead:
        rank = rank - 1  # the target's own slot
    if exclude is not None:
        self_dist = dist.gather(1, exclude.view(-1, 1))  # [B, 1]
        own = _closer(self_dist, target_dist, ties_ahead) & (targets != exclude.view(-1, 1))
        rank = rank - own.to(rank.dtype)
    return rank


def query_prank(
    dist: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None = None, *, ties_ahead: bool = False
) -> torch.Tensor:
    """QA percentile rank: mean over targets of rank / N (N - 1 when a slot is excluded)."""
    size = dist.shape[1] - (1 if exclude is not None else 0)
    return query_rank(dist, targets, exclude, ties_ahead=ties_ahead).to(dist.dtype).mean(dim=1) / size


def candidate_prank(
    cand_to_query: torch.Tensor,
    gallery_to_query: torch.Tensor,
    self_to_query: torch.Tensor | None = None,
    *,
    ties_ahead: bool = False,
    own_to_query: torch.Tensor | None = None,
) -> torch.Tensor:
    """CA percentile rank of a candidate: mean_j #{x : d(x, q_j) < d(c, q_j)} / N.

    ``cand_to_query`` ``[B, W]`` = d(c, q_j); ``gallery_to_query`` ``[B, W, N]`` = d(x, q_j);
    ``self_to_query`` ``[B, W]`` = d(candidate's own clean slot, q_j) to leave that slot out.
    ``ties_ahead`` counts the items at d(c, q_j) as ahead (``<=``: CA-, which pushes the
    candidate down). The candidate's own clean slot is the candidate itself, not a rival:
    ``own_to_query`` (its distances, when the slot stays in the ranking) keeps it behind
    on a tie, as it always was.
    """
    closer = _closer(gallery_to_query, cand_to_query.unsqueeze(2), ties_ahead).sum(dim=2).to(cand_to_query.dtype)
    size = gallery_to_query.shape[2]
    if self_to_query is not None:
        closer = closer - _closer(self_to_query, cand_to_query, ties_ahead).to(closer.dtype)
        size -= 1
    elif ties_ahead and own_to_query is not None:
        closer = closer - (own_to_query == cand_to_query).to(closer.dtype)
    return closer.mean(dim=1) / size


def first_match_rank(dist: torch.Tensor, gallery_labels: torch.Tensor, labels: torch.Tensor, exclude: torch.Tensor) -> torch.Tensor:
    """0-based rank of the first same-label gallery item, with slot ``exclude`` removed.

    Other-label items tied with the nearest same-label one rank ahead of it (the attack
    pushes same-label items down). Without ties this equals the reference's
    ``np.where(labels[argsort] == y)[0].min()`` after masking; a query with no same-label
    item left gets rank N (never "recalled").
    """
    masked = dist.scatter(1, exclude.view(-1, 1), float("inf"))
    same = gallery_labels.view(1, -1) == labels.view(-1, 1)
    nearest_same = torch.where(same, masked, torch.full_like(masked, float("inf"))).amin(dim=1, keepdim=True)
    rank = ((masked <= nearest_same) & ~same).sum(dim=1)
    missing = ~(same & torch.isfinite(masked)).any(dim=1)
    return torch.where(missing, torch.full_like(rank, dist.shape[1]), rank)


def recall_at(rank: torch.Tensor, k: int) -> torch.Tensor:
    return (rank < k).to(torch.float64)


def top1_label_match(dist: torch.Tensor, gallery_labels: torch.Tensor, labels: torch.Tensor, exclude: torch.Tensor) -> torch.Tensor:
    """1.0 where the nearest gallery item other than ``exclude`` has the query's label.

    An other-label item tied with the nearest same-label one makes it a mismatch (the
    attack wants the label lost).
    """
    masked = dist.scatter(1, exclude.view(-1, 1), float("inf"))
    same = gallery_labels.view(1, -1) == labels.view(-1, 1)
    inf = torch.full_like(masked, float("inf"))
    nearest_same = torch.where(same, masked, inf).amin(dim=1)
    nearest_other = torch.where(same, inf, masked).amin(dim=1)
    return (nearest_same < nearest_other).to(torch.float64)


def retained(dist: torch.Tensor, target: torch.Tensor, k: int, exclude: torch.Tensor) -> torch.Tensor:
    """1.0 where gallery item ``target`` is still among the k nearest (slot ``exclude`` removed).

    Items tied with the target rank ahead of it (the attack pushes it out).
    """
    masked = dist.scatter(1, exclude.view(-1, 1), float("inf"))
    target_dist = masked.gather(1, target.view(-1, 1))
    ahead = (masked <= target_dist).sum(dim=1) - 1  # the target itself
    return (ahead < k).to(torch.float64)
