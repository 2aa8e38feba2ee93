"""Retrieval metrics of the reference protocol: R@K, mAP, mAP@R, the fixed-10 "mAP@10", NMI.

The test split is both query set and gallery, each query is left out of its own ranking, and
everything is computed one chunk of queries at a time: a chunk's distances are sorted once
and the 1-based positions of its relevant items are found by binary search in that sorted
row. No N x N matrix is ever built, so a 60,000-image (SOP-sized) gallery evaluates in a
few hundred MB on top of the embeddings themselves.

Ties (items at exactly one distance from the query) never help the model: every metric is
its expected value over a random order of the tied items (McSherry & Najork, "Computing
information retrieval performance measures efficiently in the presence of tied scores",
ECIR 2008), in closed form. A model with one embedding for every image therefore scores
chance, not 100; with continuous embeddings no two distances tie and the numbers are those
of the plain ranking, bit for bit. How many queries have a tie at the very top of their
ranking is returned too (:data:`TIES_KEY`): above :data:`TIE_WARN_SHARE` it is the mark of a
collapsed or quantised embedding, and every command that prints metrics says so
(:func:`tie_note`).
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from .distances import check_metric, embed_for_metric, pairwise
from .errors import ConfigError, NonFiniteError
from .summaries import TIE_WARN_SHARE, TIES_KEY, tie_note

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
    False), each the expected value over random orders of tied items, and the share of
    queries with a tied top under :data:`TIES_KEY`.
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
    """Sums of per-query figures over chunks; the gallery's classes are indexed once.

    Every figure is its expected value over a uniformly random order of tied items
    (McSherry & Najork, ECIR 2008), in closed form. A relevant item in a tie group of ``g``
    items holding ``r`` relevant ones, after ``c`` strictly closer items of which ``b`` are
    relevant, is at each of the group's ``g`` positions with probability 1/g, and given a
    relevant item at the group's (t+1)-th position, the expected number of relevant items up
    to it is b + 1 + t (r - 1)/(g - 1). Its share of AP truncated at ``m`` group positions is
    (1/g) sum_{t<m} (b + 1 + t beta)/(c + t + 1) with beta = (r - 1)/(g - 1), i.e.
    (1/g) [(b + 1 - (c + 1) beta)(H(c + m) - H(c)) + m beta] with harmonic numbers H.
    A group of one (every item of a continuous embedding) takes the direct (b + 1)/(c + 1),
    so untied rankings give the same bits as the tie-unaware formula.
    """

    def __init__(self, labels: torch.Tensor) -> None:
        _, self.labels = torch.unique(labels, return_inverse=True)  # classes as 0..C-1
        # gallery indices grouped by class: the relevant set of a query is one slice of it
        self.order = torch.argsort(self.labels, stable=True)
        self.class_count = torch.bincount(self.labels)
        self.class_start = torch.cumsum(self.class_count, 0) - self.class_count
        n = len(self.labels)
        # harmonic numbers H(0..n) for the sums over tie groups
        steps = torch.arange(1, n + 1, dtype=torch.float64, device=labels.device).reciprocal()
        self.harmonic = torch.cat([torch.zeros(1, dtype=torch.float64, device=labels.device), steps.cumsum(0)])
        self.sums = {"R@1": 0.0, "R@2": 0.0, "mAP": 0.0, "mAP@R": 0.0, "mAP@10": 0.0}
        self.queries = 0
        self.top_tied = 0
        self.ranked = 0

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
        rel_dist = rel_dist.contiguous()
        num_rel = valid.sum(dim=1)

        sorted_dist = _sort_rows(dist)
        if sorted_dist.shape[1] > 2:  # the nearest two items (own slot left out) at one distance
            self.top_tied += int((sorted_dist[:, 0] == sorted_dist[:, 1]).sum())
        self.ranked += stop - start
        # each relevant item's tie group: c items strictly closer, g at its distance; b of the
        # relevant items strictly closer, r at its distance
        closer = torch.searchsorted(sorted_dist, rel_dist, side="left")
        group = torch.searchsorted(sorted_dist, rel_dist, side="right") - closer
        rel_closer = torch.searchsorted(rel_dist, rel_dist, side="left")
        rel_group = torch.searchsorted(rel_dist, rel_dist, side="right") - rel_closer
        hit = column.unsqueeze(0) < num_rel.unsqueeze(1)

        keep = num_rel > 0
        if not bool(keep.all()):
            closer, group, rel_closer, rel_group, hit, num_rel = (
                closer[keep], group[keep], rel_closer[keep], rel_group[keep], hit[keep], num_rel[keep])
        if num_rel.numel() == 0:
            return
        position = closer + 1  # 1-based, in the tie-free ranking
        zero = torch.zeros((), dtype=torch.float64, device=hit.device)
        # the plain precision at each relevant item: its share of AP when it ties with nothing
        precision = torch.where(hit, (rel_closer + 1).double() / position.double(), zero)
        full = precision
        at_r = precision * (hit & (position <= num_rel.unsqueeze(1)))
        at_10 = precision * (hit & (position <= 10))
        tied = hit & (group > 1)
        if bool(tied.any()):  # only the tied items' shares change (a float32 gallery has a few per query)
            rows, cols = tied.nonzero(as_tuple=True)
            share = _TiedShares(closer[rows, cols], group[rows, cols], rel_closer[rows, cols], rel_group[rows, cols], self.harmonic)
            full, at_r, at_10 = full.clone(), at_r.clone(), at_10.clone()
            full[rows, cols] = share.within(share.g)
            at_r[rows, cols] = share.within(num_rel[rows] - share.c)
            at_10[rows, cols] = share.within(10 - share.c)
        first = (closer[:, 0], group[:, 0], rel_group[:, 0])
        self.sums["R@1"] += float(_first_relevant_within(*first, 1).sum())
        self.sums["R@2"] += float(_first_relevant_within(*first, 2).sum())
        self.sums["mAP"] += float((full.sum(1) / num_rel).sum())
        self.sums["mAP@R"] += float((at_r.sum(1) / num_rel).sum())
        self.sums["mAP@10"] += float((at_10.sum(1) / 10.0).sum())
        self.queries += int(num_rel.numel())

    def result(self) -> dict[str, float]:
        if self.queries == 0:
            raise ConfigError("no query has another item of its class in the gallery; retrieval metrics are undefined")
        out = {key: value / self.queries for key, value in self.sums.items()}
        out[TIES_KEY] = self.top_tied / max(self.ranked, 1)
        return out


class _TiedShares:
    """Expected AP shares of relevant items in tie groups of more than one item (flat vectors)."""

    def __init__(self, closer: torch.Tensor, group: torch.Tensor, rel_closer: torch.Tensor, rel_group: torch.Tensor,
                 harmonic: torch.Tensor) -> None:
        f64 = torch.float64
        self.c, self.g, self.harmonic = closer, group, harmonic
        self.beta = (rel_group - 1).to(f64) / (group - 1).to(f64)
        self.base = (rel_closer + 1).to(f64) - (closer + 1).to(f64) * self.beta

    def within(self, positions: torch.Tensor) -> torch.Tensor:
        """(1/g) sum_{t<m} (b + 1 + t beta)/(c + t + 1) with m = ``positions`` clipped to [0, g]."""
        m = torch.minimum(positions.clamp_min(0), self.g)
        summed = self.base * (self.harmonic[self.c + m] - self.harmonic[self.c]) + m.to(self.beta.dtype) * self.beta
        return summed / self.g.to(summed.dtype)


def _first_relevant_within(closer: torch.Tensor, group: torch.Tensor, relevant: torch.Tensor, k: int) -> torch.Tensor:
    """P(a relevant item among the first k) when the nearest relevant item's tie group of ``group``
    items (``relevant`` of them relevant) follows ``closer`` irrelevant ones: 1 - C(g-r, m)/C(g, m), m = k - c."""
    m = (k - closer).clamp(min=0)
    miss = torch.ones(closer.shape, dtype=torch.float64, device=closer.device)
    for i in range(k):
        step = ((group - relevant - i).clamp_min(0).to(torch.float64) / (group - i).clamp_min(1).to(torch.float64))
        miss = torch.where(m > i, miss * step, miss)
    return 1.0 - miss


def _sort_rows(dist: torch.Tensor) -> torch.Tensor:
    """Ascending sort of each row (values only): numpy's SIMD sort on CPU is ~4x torch's."""
    if dist.device.type == "cpu":
        return torch.from_numpy(np.sort(dist.numpy(), axis=1))
    return torch.sort(dist, dim=1).values


@torch.no_grad()
def top_tie_share(embeddings: torch.Tensor, metric: str, *, chunk_size: int | None = None) -> float:
    """The share of items whose two nearest other items are at one distance (query = gallery).

    What :func:`retrieval_metrics` returns under :data:`TIES_KEY`, for a gallery an attack
    ranks against (embeddings already normalised for ``metric``); 0.0 below three items.
    """
    n = embeddings.shape[0]
    if n < 3:
        return 0.0
    chunk_size = chunk_size or max(1, _CHUNK_ELEMENTS // n)
    tied = 0
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        dist = pairwise(embeddings[start:stop], embeddings, metric).float()
        local = torch.arange(stop - start, device=dist.device)
        dist[local, local + start] = float("inf")
        nearest = dist.topk(2, dim=1, largest=False).values
        tied += int((nearest[:, 0] == nearest[:, 1]).sum())
    return tied / n


def normalized_mutual_information(embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """NMI between the labels and a k-means clustering with k = ``num_classes``.

    As the reference: faiss k-means (GPU when faiss has GPUs) with seed 123; without faiss,
    scikit-learn's KMeans(random_state=0) with a warning (slower, different clusters).
    """
    from sklearn.metrics import normalized_mutual_info_score  # lazy: scikit-learn takes seconds to import

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
        import faiss  # optional: faiss
    except ImportError:
        faiss = None
    if faiss is None:
        from sklearn.cluster import KMeans  # lazy: scikit-learn takes seconds to import

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


def in_percent(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics as every output shows them: rates (R@K, mAP, mAP@R, mAP@10, NMI, accuracy, the
    tied-top share) in percent; other entries as they are. Run directories' metrics.jsonl keep
    the fractions the training loop computes."""
    rates = (*METRIC_KEYS, *CLASSIFICATION_KEYS, TIES_KEY)
    return {k: (100.0 * float(v) if k in rates and isinstance(v, (int, float)) else v) for k, v in metrics.items()}


def format_metrics(metrics: dict[str, Any], keys: tuple[str, ...] = (*REPORTED_KEYS, *CLASSIFICATION_KEYS)) -> str:
    """``R@1 99.0  R@2 99.4 ...`` in percent, the way papers print them."""
    return "  ".join(f"{key} {100.0 * float(metrics[key]):.1f}" for key in keys if key in metrics)


__all__ = [
    "retrieval_metrics",
    "require_finite_embeddings",
    "classification_metrics",
    "normalized_mutual_information",
    "format_metrics",
    "in_percent",
    "CLASSIFICATION_KEYS",
    "METRIC_KEYS",
    "REPORTED_KEYS",
    "HEADLINE_KEYS",
    "SELF_EXCLUSION",
    "TIES_KEY",
    "TIE_WARN_SHARE",
    "tie_note",
    "top_tie_share",
]
