"""Retrieval metrics against hand-computed rankings, scikit-learn and invariants."""
from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from robrank.distances import embed_for_metric, pairwise
from robrank.errors import ConfigError
from robrank.metrics import METRIC_KEYS, TIES_KEY, format_metrics, normalized_mutual_information, retrieval_metrics

# 1-D points with metric E, worked out by hand (see the comments for each query's ranking).
POINTS = torch.tensor([[0.0], [1.0], [3.0], [7.0], [10.0]])
LABELS = torch.tensor([0, 0, 1, 0, 1])
# query 0: rel [1,0,1,0] R=2 -> AP 5/6, R@1 1, mAP@R 1/2, mAP@10 (1+2/3)/10
# query 1: rel [1,0,1,0]       -> same as query 0
# query 2: rel [0,0,0,1] R=1 -> AP 1/4, R@2 0, mAP@R 0, mAP@10 (1/4)/10
# query 3: rel [0,0,1,1] R=2 -> AP (1/3+2/4)/2, R@2 0, mAP@R 0, mAP@10 (1/3+1/2)/10
# query 4: rel [0,1,0,0] R=1 -> AP 1/2, R@1 0, R@2 1, mAP@R 0, mAP@10 (1/2)/10
EXPECTED = {
    "R@1": 2 / 5,
    "R@2": 3 / 5,
    "mAP": (5 / 6 + 5 / 6 + 1 / 4 + 5 / 12 + 1 / 2) / 5,
    "mAP@R": (1 / 2 + 1 / 2) / 5,
    "mAP@10": ((1 + 2 / 3) / 10 * 2 + 0.25 / 10 + (1 / 3 + 1 / 2) / 10 + 0.5 / 10) / 5,
}


def test_hand_computed_ranking():
    result = retrieval_metrics(POINTS, LABELS, "E", num_classes=2)
    for key, value in EXPECTED.items():
        assert result[key] == pytest.approx(value, abs=1e-12), key
    assert set(result) == {*METRIC_KEYS, TIES_KEY} and result[TIES_KEY] == 0.0


@pytest.mark.parametrize("chunk", [1, 2, 3, 5])
def test_hand_case_any_chunk(chunk):
    result = retrieval_metrics(POINTS, LABELS, "E", num_classes=2, chunk_size=chunk, nmi=False)
    assert "NMI" not in result
    for key, value in EXPECTED.items():
        assert result[key] == pytest.approx(value, abs=1e-12)


def test_self_exclusion_reference_differs_only_on_duplicates():
    # item 1 duplicates item 0 but has another label: the reference drops item 0 from item 1's
    # ranking (the first of the tied nearest items) and keeps item 1 itself as a hit at rank 1.
    x = torch.tensor([[0.0], [0.0], [5.0]])
    y = torch.tensor([0, 1, 0])
    fixed = retrieval_metrics(x, y, "E", 2, nmi=False)
    reference = retrieval_metrics(x, y, "E", 2, nmi=False, self_exclusion="reference")
    # fixed: query 1 has no other item of its class and is left out; query 0: rel [0,1];
    # query 2: items 0 (relevant) and 1 tie at distance 5: the relevant one is first in half
    # the orders, so R@1 1/2 and AP (1 + 1/2)/2 = 3/4
    assert fixed["R@1"] == pytest.approx(1 / 4) and fixed["mAP"] == pytest.approx((1 / 2 + 3 / 4) / 2)
    assert reference["R@1"] == pytest.approx(1 / 2) and reference["mAP"] == pytest.approx((1 / 2 + 1 + 3 / 4) / 3)
    # without duplicates the two agree
    g = torch.Generator().manual_seed(3)
    e, lab = torch.randn(60, 5, generator=g), torch.randint(0, 4, (60,), generator=g)
    assert retrieval_metrics(e, lab, "N", 4, nmi=False) == retrieval_metrics(e, lab, "N", 4, nmi=False, self_exclusion="reference")


@pytest.mark.parametrize("metric", ["C", "E", "N"])
def test_against_sklearn_and_brute_force(metric):
    g = torch.Generator().manual_seed(0)
    n = 120
    x, y = torch.randn(n, 6, generator=g), torch.randint(0, 5, (n,), generator=g)
    result = retrieval_metrics(x, y, metric, 5, nmi=False, chunk_size=17)
    e = embed_for_metric(x, metric)
    d = pairwise(e, e, metric).double().numpy()
    aps, r1, r2, map_r, map_10 = [], [], [], [], []
    for i in range(n):
        keep = np.arange(n) != i
        relevant = (y.numpy()[keep] == int(y[i])).astype(int)
        scores = -d[i][keep]
        aps.append(average_precision_score(relevant, scores))
        rel = relevant[np.argsort(d[i][keep], kind="stable")]
        precision = np.cumsum(rel) / np.arange(1, len(rel) + 1)
        big_r = rel.sum()
        r1.append(rel[0])
        r2.append(rel[:2].max())
        map_r.append((precision[:big_r] * rel[:big_r]).sum() / big_r)
        map_10.append((precision[:10] * rel[:10]).sum() / 10)
    assert result["mAP"] == pytest.approx(np.mean(aps), abs=1e-6)
    assert result["R@1"] == pytest.approx(np.mean(r1))
    assert result["R@2"] == pytest.approx(np.mean(r2))
    assert result["mAP@R"] == pytest.approx(np.mean(map_r), abs=1e-6)
    assert result["mAP@10"] == pytest.approx(np.mean(map_10), abs=1e-6)


def test_chunk_size_invariance():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(257, 16, generator=g), torch.randint(0, 9, (257,), generator=g)
    base = retrieval_metrics(x, y, "C", 9, nmi=False)
    for chunk in (1, 10, 64, 256, 1000):
        other = retrieval_metrics(x, y, "C", 9, nmi=False, chunk_size=chunk)
        for key in base:
            assert other[key] == pytest.approx(base[key], abs=1e-9)


def _clusters() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    centres = torch.eye(8)[:4] * 10.0
    labels = torch.arange(4).repeat_interleave(100)
    return centres[labels] + 0.01 * torch.randn(400, 8, generator=g), labels


def test_nmi_of_perfect_clustering_is_one():
    x, y = _clusters()
    assert normalized_mutual_information(x, y, 4) == pytest.approx(1.0)
    result = retrieval_metrics(x, y, "E", 4)
    assert result["NMI"] == pytest.approx(1.0) and result["R@1"] == 1.0 and result["mAP"] == pytest.approx(1.0)


def test_nmi_of_random_labels_is_low():
    x, _ = _clusters()
    y = torch.randint(0, 4, (400,), generator=torch.Generator().manual_seed(5))
    assert normalized_mutual_information(x, y, 4) < 0.1


def test_nmi_without_faiss_falls_back_to_sklearn(monkeypatch):
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("no faiss")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    x, y = _clusters()
    with pytest.warns(UserWarning, match="faiss is not installed"):
        assert normalized_mutual_information(x, y, 4) == pytest.approx(1.0)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="self_exclusion"):
        retrieval_metrics(POINTS, LABELS, "E", 2, self_exclusion="argsort")
    with pytest.raises(ConfigError, match="metric"):
        retrieval_metrics(POINTS, LABELS, "L1", 2)
    with pytest.raises(ConfigError, match="no query"):
        retrieval_metrics(POINTS[:2], torch.tensor([0, 1]), "E", 2, nmi=False)


def test_format_metrics_in_percent():
    assert format_metrics({"R@1": 0.99, "R@2": 0.994, "mAP": 0.5, "mAP@R": 0.25, "NMI": 0.847}) == (
        "R@1 99.0  R@2 99.4  mAP 50.0  mAP@R 25.0  NMI 84.7"
    )
