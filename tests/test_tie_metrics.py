"""Tie-aware clean metrics: brute force over every order of the tied items, and an outside implementation.

The outside implementation is the ``tie-aware-retrieval-metrics`` package (``trm``: closed-form
expected hits@k and AP@k over tie orders, McSherry & Najork 2008), written by nobody here.
"""
from __future__ import annotations

import itertools
import json
import sys
from math import factorial

import numpy as np
import pytest
import torch

from robrank.distances import embed_for_metric, pairwise
from robrank.metrics import TIE_WARN_SHARE, TIES_KEY, retrieval_metrics, tie_note

trm = pytest.importorskip("trm", reason="tie-aware-retrieval-metrics is a test dependency (pip install -e .[test])")


def _distances(x: torch.Tensor, metric: str) -> np.ndarray:
    """The very distances robrank ranks by, so ties are the same ties."""
    e = embed_for_metric(x.float(), metric)
    return pairwise(e, e, metric).float().double().numpy()


def _plain(rel: list[int]) -> dict[str, float]:
    """R@1, R@2, AP, AP@R, AP@10 of one fixed ranking (relevance list, nearest first)."""
    rel_arr = np.asarray(rel, dtype=float)
    precision = np.cumsum(rel_arr) / np.arange(1, len(rel_arr) + 1)
    big_r = rel_arr.sum()
    return {"R@1": rel_arr[0], "R@2": rel_arr[:2].max(), "mAP": (precision * rel_arr).sum() / big_r,
            "mAP@R": (precision * rel_arr)[: int(big_r)].sum() / big_r, "mAP@10": (precision * rel_arr)[:10].sum() / 10}


def _brute_force(x: torch.Tensor, y: torch.Tensor, metric: str) -> dict[str, float]:
    """Every metric averaged over every order consistent with the distances (ties permuted)."""
    d = _distances(x, metric)
    n = len(y)
    totals, queries = dict.fromkeys(("R@1", "R@2", "mAP", "mAP@R", "mAP@10"), 0.0), 0
    for i in range(n):
        others = [j for j in range(n) if j != i]
        if not any(int(y[j]) == int(y[i]) for j in others):
            continue
        per_order = []
        for order in itertools.permutations(others):
            dists = [d[i, j] for j in order]
            if all(a <= b for a, b in zip(dists, dists[1:])):
                per_order.append(_plain([int(y[j]) == int(y[i]) for j in order]))
        for key in totals:
            totals[key] += float(np.mean([m[key] for m in per_order]))
        queries += 1
    return {key: value / queries for key, value in totals.items()}


def _quantised(seed: int, n: int, levels: int, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, levels, (n, 1), generator=g).float(), torch.randint(0, classes, (n,), generator=g)


@pytest.mark.parametrize("seed", range(6))
def test_every_metric_is_the_mean_over_all_tie_orders(seed):
    # 1-D integer points: many exact ties (up to 6! orders per query)
    x, y = _quantised(seed, 7, 3, 2)
    got = retrieval_metrics(x, y, "E", 2, nmi=False, chunk_size=3)
    for key, value in _brute_force(x, y, "E").items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def test_brute_force_with_cosine_and_a_constant_embedding():
    x, y = torch.ones(7, 4), torch.tensor([0, 0, 0, 1, 1, 2, 2])
    got = retrieval_metrics(x, y, "C", 3, nmi=False)
    expected = _brute_force(x, y, "C")
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    assert expected["R@1"] < 0.4 and got[TIES_KEY] == 1.0


def _trm_reference(x: torch.Tensor, y: torch.Tensor, metric: str) -> dict[str, float]:
    """R@1, mAP, mAP@R, mAP@10 from trm's expected hits@1 and AP@k (scores = -distance)."""
    d = _distances(x, metric)
    n = len(y)
    sums, queries = {"R@1": 0.0, "mAP": 0.0, "mAP@R": 0.0, "mAP@10": 0.0}, 0
    for i in range(n):
        keep = [j for j in range(n) if j != i]
        rel = [int(y[j]) == int(y[i]) for j in keep]
        big_r = sum(rel)
        if big_r == 0:
            continue
        groups = trm.build_tie_groups([-d[i, j] for j in keep], rel)
        from trm.metrics import expected_ap, expected_hits

        sums["R@1"] += expected_hits(groups, 1)
        sums["mAP"] += expected_ap(groups, len(keep))
        sums["mAP@R"] += expected_ap(groups, big_r)
        sums["mAP@10"] += expected_ap(groups, 10) * big_r / 10
        queries += 1
    return {key: value / queries for key, value in sums.items()}


@pytest.mark.parametrize(("seed", "levels"), [(0, 2), (1, 3), (2, 5), (3, 1000000)])
@pytest.mark.parametrize("metric", ["E", "N"])
def test_agrees_with_tie_aware_retrieval_metrics(seed, levels, metric):
    # 60 items on a coarse grid (heavy ties) up to a fine one (no ties)
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, levels, (60, 3), generator=g).float() + (1.0 if metric == "N" else 0.0)
    y = torch.randint(0, 4, (60,), generator=g)
    got = retrieval_metrics(x, y, metric, 4, nmi=False, chunk_size=13)
    for key, value in _trm_reference(x, y, metric).items():
        assert got[key] == pytest.approx(value, abs=1e-10), key


def test_continuous_embeddings_give_the_plain_ranking_bit_for_bit():
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(90, 8, generator=g), torch.randint(0, 6, (90,), generator=g)
    d = _distances(x, "N")
    plain = {key: 0.0 for key in ("R@1", "R@2", "mAP", "mAP@R", "mAP@10")}
    for i in range(90):
        keep = np.arange(90) != i
        rel = (y.numpy()[keep] == int(y[i])).astype(int)[np.argsort(d[i][keep], kind="stable")]
        for key, value in _plain(list(rel)).items():
            plain[key] += value / 90
    got = retrieval_metrics(x, y, "N", 6, nmi=False)
    assert got[TIES_KEY] == 0.0
    for key, value in plain.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def test_constant_embedding_scores_chance_and_is_noted():
    # 4 classes of 10: a query has 9 relevant among 39 others, in one tie group
    y = torch.arange(4).repeat_interleave(10)
    got = retrieval_metrics(torch.ones(40, 5), y, "N", 4, nmi=False)
    assert got["R@1"] == pytest.approx(9 / 39)
    assert got["R@2"] == pytest.approx(1 - (30 / 39) * (29 / 38))
    assert got["mAP"] < 0.3 and got["mAP@R"] < 0.15
    assert got[TIES_KEY] == 1.0
    note = tie_note(got[TIES_KEY])
    assert note and "\n" not in note and "100.0% of the queries" in note
    assert tie_note(TIE_WARN_SHARE) is None and tie_note(0.0) is None and tie_note(None) is None


CONSTANT = '''
import torch
from torch import nn


class Constant(nn.Module):
    """One embedding for every image (a collapsed model)."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.ones(8))

    def forward(self, x):
        return self.bias.expand(x.shape[0], -1) + 0.0 * x.flatten(1)[:, :1]


def make():
    return Constant()
'''


def test_eval_of_a_constant_model_is_chance_not_100(tmp_path, robrank_cli):
    (tmp_path / "constmodel.py").write_text(CONSTANT)
    base = ["eval", "--model", f"{tmp_path / 'constmodel.py'}:make", "--metric", "N", "--dataset", "digits", "-b", "128"]
    result = robrank_cli(*base, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output[result.output.index("{"):])
    # digits' test split: 10 balanced classes, so R@1 is about 10 (percent, like every --json rate)
    assert 5 < payload["R@1"] < 15, payload
    assert payload[TIES_KEY] == 100.0
    text = robrank_cli(*base)
    assert text.exit_code == 0
    assert sum("tie at the top" in line for line in text.output.splitlines()) == 1, text.output
    assert "R@1    100.00" not in text.output


def test_attack_and_swipe_of_a_constant_model_count_ties_for_the_attacker(tmp_path, robrank_cli):
    (tmp_path / "constmodel.py").write_text(CONSTANT)
    model = ["--model", f"{tmp_path / 'constmodel.py'}:make", "--metric", "N", "--dataset", "digits"]
    out = robrank_cli("attack", *model, "-A", "ES:eps=0.01:alpha=0.01:pgditer=1", "-m", "1", "-b", "4", "--no-progress", "--json")
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output[out.output.index("{"):])
    # every item ties with the nearest same-label one: all other-label items rank ahead of it
    assert payload["orig"]["r@1"] == 0.0 and payload["top_ties"] == 100.0  # percent
    text = robrank_cli("attack", *model, "-A", "GTT:eps=0.01:alpha=0.01:pgditer=1", "-m", "1", "-b", "4", "--no-progress")
    assert text.exit_code == 0 and sum("tie at the top" in line for line in text.output.splitlines()) == 1, text.output
    results = tmp_path / "swipe.json"
    swiped = robrank_cli("swipe", *model, "-p", "rob28", "-b", "2", "-m", "1", "--no-progress", "--output", str(results))
    assert swiped.exit_code == 0, swiped.output
    assert json.loads(results.read_text())["top_ties"] == 100.0
    assert sum("tie at the top" in line for line in swiped.output.splitlines()) == 1, swiped.output
    report = robrank_cli("report", str(results))
    assert sum("tie at the top" in line for line in report.output.splitlines()) == 1, report.output
