"""Retrieval metrics of the reference protocol: R@K, mAP, mAP@R, the fixed-10 "mAP@10", NMI.

The test split is both query set and gallery, each query is left out of its own ranking, and
everything is computed one chunk of queries at a time: a chunk's distances are sorted once
and the 1-based positions of its relevant items are found by binary search in that sorted
row. No N x N matrix is ever built, so a 60,000-image (SOP-sized) gallery evaluates in a
few hundred MB on top of the embeddings themselves.

Ties (an irrelevant item at exactly the distance of a relevant one) are resolved in favour of
the relevant item; the reference's unstable argsort resolves them arbitrarily, and with
continuous embeddings they do not occur.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from .distances import check_metric, embed_for_metric, pairwise
from .errors import ConfigError, NonFiniteError

#: the keys of :func:`retrieval_metrics`, in the order they are printed
METRIC_KEYS: tuple[str, ...] = ("R@1", "R@2", "mAP", "mAP@R", "mAP@10", "NMI")
#: what ``robrank eval`` and training logs print (the reference's table; mAP@10 stays in the files)
REPORTED_KEYS: tuple[str, ...] = ("R@1", "R@2", "mAP", "mAP@R", "NMI")
#: the one-line clean summary of ``robrank run``'s report
HEADLINE_KEYS: tuple[str, ...] = ("R@1", "R@2", "mAP", "NMI")

#: how the query leaves its own ranking
SELF_EXCLUSION: tuple[str, ...] = ("index", "reference")

#: distances held per chunk (floats); 2**25 is 128 MB per buffer
_CHUNK_ELEMENTS = 2**25


def require_finite_embeddings(embeddings: torch.Tensor) -> None:
    """Refuse to score a model whose embeddings are not finite (NaN weights, a diverged run).

    Without this, NaN distances rank arbitrarily: eval fails deep in faiss, an attack reports
    a perfect-looking prank of 0, and a swipe an ERS of nan.
    """
    finite = torch.isfinite(embeddings).all(dim=-1)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise NonFiniteError(
            f"the model's embeddings of {bad} of {finite.numel()} test images are NaN/inf, so it cannot be scored; "
            "its weights are broken (retrain it, e.g. with a lower --lr, or check the checkpoint)"
        )


def retrieval_metrics(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    metric: str,
    num_classes: int,
    *,
    chunk_size: int | None = None,
    self_exclusion: str = "index",
    nmi: bool = True,
) -> dict[str, float]:
    """Retrieval quality of ``embeddings`` (N x D) with ``labels`` (N), query = gallery.

    ``metric`` is C, E or N (embeddings are normalised for C and N here; normalising twice
    is harmless). ``num_classes`` is the k of NMI's k-means (the dataset record's
    ``num_test_classes``). ``self_exclusion="index"`` removes each query's own index from
    its ranking; ``"reference"`` reproduces the reference code, which drops the nearest
    item instead: the same thing unless a duplicate of the query ties with it at distance
    0, in which case the reference keeps the query itself as a relevant hit at rank 1.
    Queries whose class has no other item are left out of the ranking averages.
    Returns fractions in [0, 1] under :data:`METRIC_KEYS` (without "NMI" when ``nmi`` is
    False).
    """
    check_metric(metric)
    if self_exclusion not in SELF_EXCLUSION:
        raise ConfigError(f"unknown self_exclusion {self_exclusion!r}; use 'index' or 'reference'")
    if embeddings.dim() != 2 or labels.dim() != 1 or embeddings.shape[0] != labels.shape[0]:
        raise ValueError(f"want N x D embeddings and N labels, got {tuple(embeddings.shape)} and {tuple(labels.shape)}")
    n = embeddings.shape[0]
    if n < 2:
        raise ConfigError(f"retrieval metrics need at least 2 items, got {n}")
    require_finite_embeddings(embeddings)
    gallery = embed_for_metric(embeddings.detach().float(), metric).contiguous()
    labels = labels.detach().to(device=gallery.device, dtype=torch.int64)
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ELEMENTS // n)
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be positive, got {chunk_size}")

    ranking = _RankingAccumulator(labels)
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        ranking.add(gallery, start, stop, metric, self_exclusion)
    result = ranking.result()
    if nmi:
        result["NMI"] = normalized_mutual_information(gallery, labels, num_classes)
    return result


class _RankingAccumulator:
    """Sums of per-query figures over chunks; the gallery's classes are indexed once."""

    def __init__(self, labels: torch.Tensor) -> None:
        _, self.labels = torch.unique(labels, return_inverse=True)  # classes as 0..C-1
        # gallery indices grouped by class: the relevant set of a query is one slice of it
        self.order = torch.argsort(self.labels, stable=True)
        self.class_count = torch.bincount(self.labels)
        self.class_start = torch.cumsum(self.class_count, 0) - self.class_count
        self.sums = {"R@1": 0.0, "R@2": 0.0, "mAP": 0.0, "mAP@R": 0.0, "mAP@10": 0.0}
        self.queries = 0

    def add(self, gallery: torch.Tensor, start: int, stop: int, metric: str, self_exclusion: str) -> None:
        rows = torch.arange(start, stop, device=gallery.device)
        dist = pairwise(gallery[start:stop], gallery, metric).float()
        if self_exclusion == "index":
            excluded = rows
        else:  # the reference drops argsort[0]: the nearest item, lowest index among ties
            excluded = torch.argmin(dist, dim=1)
        local = torch.arange(stop - start, device=gallery.device)
        dist[local, excluded] = float("inf")

        # relevant items: a padded slice of the class-grouped gallery per query
        qlab = self.labels[start:stop]
        count = self.class_count[qlab]
        width = int(count.max())
        column = torch.arange(width, device=gallery.device)
        valid = column.unsqueeze(0) < count.unsqueeze(1)
        slot = (self.class_start[qlab].unsqueeze(1) + column.unsqueeze(0)).clamp_max(len(self.order) - 1)
        relevant = self.order[slot]
        valid &= relevant != excluded.unsqueeze(1)
        rel_dist = dist.gather(1, relevant).masked_fill(~valid, float("inf"))
        rel_dist, _ = torch.sort(rel_dist, dim=1)
        num_rel = valid.sum(dim=1)

        sorted_dist = _sort_rows(dist)
        # 0-based position = number of items strictly closer; tied relevant items take
        # consecutive positions (rank_k >= rank_{k-1} + 1)
        before = torch.searchsorted(sorted_dist, rel_dist.contiguous(), side="left")
        k = torch.arange(width, device=gallery.device).unsqueeze(0)
        position = torch.cummax(before - k, dim=1).values + k + 1  # 1-based
        hit = column.unsqueeze(0) < num_rel.unsqueeze(1)
        precision = torch.where(hit, (k + 1).double() / position.double(), torch.zeros((), dtype=torch.float64, device=gallery.device))

        keep = num_rel > 0
        if not bool(keep.all()):
            precision, position, hit, num_rel = precision[keep], position[keep], hit[keep], num_rel[keep]
        if num_rel.numel() == 0:
            return
        first = position[:, 0]
        self.sums["R@1"] += float((first <= 1).sum())
        self.sums["R@2"] += float((first <= 2).sum())
        self.sums["mAP"] += float((precision.sum(1) / num_rel).sum())
        within_r = hit & (position <= num_rel.unsqueeze(1))
        self.sums["mAP@R"] += float(((precision * within_r).sum(1) / num_rel).sum())
        within_10 = hit & (position <= 10)
        self.sums["mAP@10"] += float(((precision * within_10).sum(1) / 10.0).sum())
        self.queries += int(num_rel.numel())

    def result(self) -> dict[str, float]:
        if self.queries == 0:
            raise ConfigError("no query has another item of its class in the gallery; retrieval metrics are undefined")
        return {key: value / self.queries for key, value in self.sums.items()}


def _sort_rows(dist: torch.Tensor) -> torch.Tensor:
    """Ascending sort of each row (values only): numpy's SIMD sort on CPU is ~4x torch's."""
    if dist.device.type == "cpu":
        return torch.from_numpy(np.sort(dist.numpy(), axis=1))
    return torch.sort(dist, dim=1).values


def normalized_mutual_information(embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """NMI between the labels and a k-means clustering with k = ``num_classes``.

    As the reference: faiss k-means (GPU when faiss has GPUs) with seed 123; without faiss,
    scikit-learn's KMeans(random_state=0) with a warning (slower, different clusters).
    """
    from sklearn.metrics import normalized_mutual_info_score

    x = np.ascontiguousarray(embeddings.detach().float().cpu().numpy())
    y = labels.detach().cpu().numpy()
    k = int(num_classes)
    if k < 1:
        raise ConfigError(f"NMI needs at least one cluster, got num_classes={num_classes}")
    if k > x.shape[0]:
        warnings.warn(f"robrank: NMI with {k} clusters but only {x.shape[0]} items; using k={x.shape[0]}", stacklevel=2)
        k = x.shape[0]
    assignment = _kmeans(x, k)
    return float(normalized_mutual_info_score(y, assignment))


def _kmeans(x: np.ndarray, k: int) -> np.ndarray:
    try:
        import faiss
    except ImportError:
        faiss = None
    if faiss is None:
        from sklearn.cluster import KMeans

        warnings.warn(
            "robrank: faiss is not installed, NMI uses scikit-learn KMeans (slower, clusters differ from the "
            "reference); pip install faiss-cpu",
            stacklevel=3,
        )
        return KMeans(n_clusters=k, random_state=0, n_init="auto").fit_predict(x)
    use_gpu = bool(getattr(faiss, "get_num_gpus", lambda: 0)())
    # min_points_per_centroid only controls faiss's "please provide at least N points" warning
    # (printed on every validation of a small test split); it does not change the clustering.
    kwargs: dict[str, Any] = {"seed": 123, "verbose": False, "min_points_per_centroid": 1}
    if use_gpu:
        kwargs["gpu"] = True
    try:
        kmeans = faiss.Kmeans(x.shape[1], k, **kwargs)
        kmeans.train(x)
    except (RuntimeError, MemoryError):  # GPU out of memory: the reference retries on the CPU
        if not use_gpu:
            raise
        kwargs.pop("gpu")
        kmeans = faiss.Kmeans(x.shape[1], k, **kwargs)
        kmeans.train(x)
    _, assignment = kmeans.index.search(x, 1)
    return assignment.ravel()


#: what a classifier's validation reports (a fraction, like the retrieval metrics)
CLASSIFICATION_KEYS: tuple[str, ...] = ("accuracy",)


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Top-1 accuracy of ``logits`` ``[N, K]`` (the reference's classifier validation)."""
    if logits.dim() != 2 or logits.shape[0] != labels.numel():
        raise ValueError(f"classification_metrics needs logits [N, K] for N labels; got {tuple(logits.shape)} for {labels.numel()}")
    if labels.numel() == 0:
        return {"accuracy": math.nan}
    correct = logits.argmax(dim=1) == labels.to(logits.device).view(-1)
    return {"accuracy": float(correct.double().mean())}


def format_metrics(metrics: dict[str, Any], keys: tuple[str, ...] = (*REPORTED_KEYS, *CLASSIFICATION_KEYS)) -> str:
    """``R@1 99.0  R@2 99.4 ...`` in percent, the way papers print them."""
    return "  ".join(f"{key} {100.0 * float(metrics[key]):.1f}" for key in keys if key in metrics)


__all__ = [
    "retrieval_metrics",
    "require_finite_embeddings",
    "classification_metrics",
    "normalized_mutual_information",
    "format_metrics",
    "CLASSIFICATION_KEYS",
    "METRIC_KEYS",
    "REPORTED_KEYS",
    "HEADLINE_KEYS",
    "SELF_EXCLUSION",
]
