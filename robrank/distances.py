"""The three metrics of the reference code, in one place.

``C``: cosine distance 1 - cos on L2-normalised embeddings; ``E``: Euclidean on raw
embeddings; ``N``: Euclidean on L2-normalised embeddings (the unit hypersphere). Losses,
miners, evaluation, attacks and defenses all call these, so a metric means the same thing
everywhere. Inputs to :func:`pairwise` and :func:`paired` are expected to be already passed
through :func:`embed_for_metric` (normalised for C and N), exactly as the reference's
``forwardmetric`` does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import ConfigError

METRICS: tuple[str, ...] = ("C", "E", "N")


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; use one of C (cosine), E (Euclidean), N (normalised Euclidean)")
    return metric


def embed_for_metric(embeddings: torch.Tensor, metric: str) -> torch.Tensor:
    """L2-normalise for C and N; leave E untouched."""
    if metric in ("C", "N"):
        return F.normalize(embeddings, p=2, dim=-1)
    return embeddings


def pairwise(x: torch.Tensor, y: torch.Tensor, metric: str, *, gram_floor: float | None = None) -> torch.Tensor:
    """All distances between rows of ``x`` (n x d) and ``y`` (m x d): an n x m matrix.

    E/N distances come from ``torch.cdist`` (exact differences for small matrices), or, with
    ``gram_floor``, from the Gram expansion sqrt(max(|x|² + |y|² − 2 x·y, gram_floor)): what the
    reference's losses and miners computed. A floor above 0 (the losses use 1e-12) gives
    identical rows a zero gradient instead of NaN; mining uses 0, the reference's formula
    with its rounding-negative diagonal clamped instead of NaN.
    """
    if metric == "C":
        return 1.0 - x @ y.T
    if gram_floor is not None:
        sq = (x * x).sum(-1, keepdim=True) + (y * y).sum(-1).unsqueeze(0) - 2.0 * (x @ y.T)
        return sq.clamp_min(gram_floor).sqrt()
    return torch.cdist(x, y, p=2.0, compute_mode="donot_use_mm_for_euclid_dist" if x.shape[0] * y.shape[0] <= 4096 else "use_mm_for_euclid_dist_if_necessary")


def paired(x: torch.Tensor, y: torch.Tensor, metric: str, *, pairwise_eps: float = 0.0) -> torch.Tensor:
    """Distances between matching rows of ``x`` and ``y`` (both n x d): a vector of n.

    ``pairwise_eps`` (E/N only) gives ‖x − y + eps‖, as ``torch.nn.functional.pairwise_distance``
    measures it (eps = 1e-6 there): the reference's ES objective depends on that offset.
    """
    if metric == "C":
        return 1.0 - (x * y).sum(dim=-1)
    return (x - y + pairwise_eps if pairwise_eps else x - y).norm(p=2, dim=-1)
