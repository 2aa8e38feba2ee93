"""Smooth surrogates of the ranking metrics: the second objective of the worst-case ensemble.

The reference's objectives are hinges summed over the whole gallery, distances, or a hard
max/min gap between positives and negatives. Each is a fine direction of descent but
a poor estimate of what the attack is *scored* on, a rank or a top-1 label: a hinge over N
items weights every item already on the wrong side equally, however far it is from
flipping, and its value says little about how many items are left to pass. The
surrogates below track the metric itself:

* :func:`soft_rank` replaces the count #{x : d_x < a} of a percentile rank by
  Σ_x σ((a − d_x)/τ): items within a few τ of the boundary dominate the gradient, which
  are exactly the items one step can move past, and as τ → 0 it becomes the rank;
* :func:`label_margin` is the smooth margin of a top-1 label (recall@1): the soft distance
  to the nearest item of the query's class minus the soft distance to the nearest item of
  any other class (soft minima by log-sum-exp at temperature τ), the ranking analogue of
  the CW/DLR margin of classification attacks; it is negative while R@1 holds;
* :func:`kth_margin`: the gap between an item's distance and the k-th nearest other item,
  negative while the item is still in the top k.

Temperatures are relative: τ = :data:`TEMPERATURE` × the standard deviation of the query's
clean distances to the gallery, so the surrogates behave the same for the cosine and the
Euclidean metrics and for any embedding scale.
"""
from __future__ import annotations

import torch

#: τ as a fraction of the spread (standard deviation) of a query's clean gallery distances
TEMPERATURE = 0.05
#: smallest temperature, for a degenerate gallery whose distances do not spread at all
TINY_TEMPERATURE = 1e-6


def temperature(clean_dist: torch.Tensor) -> torch.Tensor:
    """Per-row τ ``[B, 1]`` from clean distances ``[B, N]`` (or ``[B, W, N]`` -> ``[B, W, 1]``)."""
    return (TEMPERATURE * clean_dist.std(dim=-1, keepdim=True)).clamp_min(TINY_TEMPERATURE)


def soft_rank(anchor: torch.Tensor, others: torch.Tensor, tau: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Soft fraction of ``others`` closer than ``anchor``: mean_x σ((anchor − d_x)/τ), mean over M.

    ``anchor`` ``[..., M]`` are the distances whose rank is measured; ``others`` ``[..., N]``
    (shared by the M anchors) or ``[..., M, N]`` the distances they are ranked among; ``tau``
    broadcasts against ``[..., M, N]``; ``exclude`` (broadcasting against ``anchor``) is one
    distance per anchor left out of the count: the perturbed object's own slot.
    """
    if others.dim() == anchor.dim():
        others = others.unsqueeze(-2)
    size = others.shape[-1]
    closer = torch.sigmoid((anchor.unsqueeze(-1) - others) / tau).sum(dim=-1)
    if exclude is not None:
        closer = closer - torch.sigmoid((anchor - exclude) / tau.squeeze(-1))
        size -= 1
    return closer.mean(dim=-1) / size


def soft_min(dist: torch.Tensor, mask: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """−τ·log Σ_{x in mask} exp(−d_x/τ) per row: a smooth minimum over the masked items (≤ the hard one)."""
    logits = (-dist / tau).masked_fill(~mask, float("-inf"))
    return -tau.squeeze(-1) * torch.logsumexp(logits, dim=-1)


def label_margin(dist: torch.Tensor, same: torch.Tensor, own: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Soft d(nearest other-class item) − soft d(nearest same-class item), own slot removed.

    ``dist`` ``[B, N]``, ``same`` ``[B, N]`` (gallery label == query label), ``own`` ``[B]``
    the query's own slot (never its own neighbour, as in recall@1). Minimising it drives
    the nearest neighbour to another class; it is negative while the top-1 label matches.
    A query with no item of its class (or of another class) left gets 0.
    """
    keep = torch.ones_like(same).scatter(1, own.view(-1, 1), False)
    positive, negative = same & keep, ~same & keep
    margin = soft_min(dist, negative, tau) - soft_min(dist, positive, tau)
    return torch.where(positive.any(dim=1) & negative.any(dim=1), margin, torch.zeros_like(margin))


def kth_margin(dist: torch.Tensor, item: torch.Tensor, own: torch.Tensor, k: int) -> torch.Tensor:
    """d(k-th nearest item other than ``item`` and ``own``) − d(``item``): negative while ``item`` is in the top k."""
    masked = dist.scatter(1, own.view(-1, 1), float("inf")).scatter(1, item.view(-1, 1), float("inf"))
    kth = masked.topk(min(k, masked.shape[1]), dim=1, largest=False).values[:, -1]
    return kth - dist.gather(1, item.view(-1, 1))[:, 0]
