"""Per-sample ranking metrics of the attacks, vectorised over the batch.

The reference computed these one query at a time (``argsort`` per row in numpy), which is
what made a CPU swipe take hours. Every function here returns one value per perturbed
object, so the runner can sum them and average over *samples* (not over batch means).
Ranks are counts of strictly closer gallery items, which equals the reference's
argsort-of-argsort position whenever distances are not tied.
"""
from __future__ import annotations

import torch


def query_rank(dist: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, M]``: 0-based position of each target in its query's ranking ``dist`` (``[B, N]``).

    ``exclude`` (``[B]``) is a gallery slot left out of every ranking (the query's own).
    """
    target_dist = dist.gather(1, targets)  # [B, M]
    rank = (dist.unsqueeze(1) < target_dist.unsqueeze(2)).sum(dim=2)
    if exclude is not None:
        self_dist = dist.gather(1, exclude.view(-1, 1))  # [B, 1]
        rank = rank - (self_dist < target_dist).to(rank.dtype)
    return rank


def query_prank(dist: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """QA percentile rank: mean over targets of rank / N (N - 1 when a slot is excluded)."""
    size = dist.shape[1] - (1 if exclude is not None else 0)
    return query_rank(dist, targets, exclude).to(dist.dtype).mean(dim=1) / size


def candidate_prank(
    cand_to_query: torch.Tensor, gallery_to_query: torch.Tensor, self_to_query: torch.Tensor | None = None
) -> torch.Tensor:
    """CA percentile rank of a candidate: mean_j #{x : d(x, q_j) < d(c, q_j)} / N.

    ``cand_to_query`` ``[B, W]`` = d(c, q_j); ``gallery_to_query`` ``[B, W, N]`` = d(x, q_j);
    ``self_to_query`` ``[B, W]`` = d(candidate's own clean slot, q_j) to leave that slot out.
    """
    closer = (gallery_to_query < cand_to_query.unsqueeze(2)).sum(dim=2).to(cand_to_query.dtype)
    size = gallery_to_query.shape[2]
    if self_to_query is not None:
        closer = closer - (self_to_query < cand_to_query).to(closer.dtype)
        size -= 1
    return closer.mean(dim=1) / size


def first_match_rank(dist: torch.Tensor, gallery_labels: torch.Tensor, labels: torch.Tensor, exclude: torch.Tensor) -> torch.Tensor:
    """0-based rank of the first same-label gallery item, with slot ``exclude`` removed.

    Equals the reference's ``np.where(labels[argsort] == y)[0].min()`` after masking; a
    query with no same-label item left gets rank N (never "recalled").
    """
    masked = dist.scatter(1, exclude.view(-1, 1), float("inf"))
    same = gallery_labels.view(1, -1) == labels.view(-1, 1)
    nearest_same = torch.where(same, masked, torch.full_like(masked, float("inf"))).amin(dim=1, keepdim=True)
    rank = (masked < nearest_same).sum(dim=1)
    missing = ~(same & torch.isfinite(masked)).any(dim=1)
    return torch.where(missing, torch.full_like(rank, dist.shape[1]), rank)


def recall_at(rank: torch.Tensor, k: int) -> torch.Tensor:
    return (rank < k).to(torch.float64)


def top1_label_match(dist: torch.Tensor, gallery_labels: torch.Tensor, labels: torch.Tensor, exclude: torch.Tensor) -> torch.Tensor:
    """1.0 where the nearest gallery item other than ``exclude`` has the query's label."""
    masked = dist.scatter(1, exclude.view(-1, 1), float("inf"))
    top1 = masked.argmin(dim=1)
    return (gallery_labels[top1] == labels.view(-1)).to(torch.float64)


def retained(dist: torch.Tensor, target: torch.Tensor, k: int, exclude: torch.Tensor) -> torch.Tensor:
    """1.0 where gallery item ``target`` is still among the k nearest (slot ``exclude`` removed)."""
    masked = dist.scatter(1, exclude.view(-1, 1), float("inf"))
    topk = masked.topk(min(k, masked.shape[1]), dim=1, largest=False).indices
    return (topk == target.view(-1, 1)).any(dim=1).to(torch.float64)
