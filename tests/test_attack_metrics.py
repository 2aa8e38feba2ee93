"""Attack metrics and selection helpers against hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch

from robrank.attacks import metrics, selection
from robrank_plugins.attacks.gtm import greedy_pairs
from robrank_plugins.attacks.query import query_loss
from robrank.plugins import get_registry
from robrank_plugins.attacks.spqa import XI_RATE_DEFAULT, adaptive_xi


def test_query_percentile_rank_by_hand():
    dist = torch.tensor([[0.0, 0.3, 0.1, 0.5, 0.2]])
    # item 3 has 4 closer items, item 2 has 1 -> mean rank 2.5 of N=5
    assert metrics.query_rank(dist, torch.tensor([[3, 2]])).tolist() == [[4, 1]]
    assert metrics.query_prank(dist, torch.tensor([[3, 2]])).item() == pytest.approx(0.5)
    # leaving the query's own slot 0 out: ranks 3 and 0 among N-1 = 4
    assert metrics.query_prank(dist, torch.tensor([[3, 2]]), exclude=torch.tensor([0])).item() == pytest.approx(1.5 / 4)


def test_candidate_percentile_rank_by_hand():
    # one candidate, two queries; N = 4 gallery items
    cand = torch.tensor([[0.25, 0.9]])
    gal = torch.tensor([[[0.0, 0.1, 0.5, 0.7], [0.0, 0.95, 1.0, 0.2]]])
    # query 0: 2 of 4 closer; query 1: 2 of 4 closer -> 0.5
    assert metrics.candidate_prank(cand, gal).item() == pytest.approx(0.5)
    # own slot has d = 0.1 to query 0 and 0.95 to query 1: drops one from the first count
    own = torch.tensor([[0.1, 0.95]])
    assert metrics.candidate_prank(cand, gal, own).item() == pytest.approx((1 / 3 + 2 / 3) / 2)


def test_first_match_rank_recall_and_retain_by_hand():
    labels = torch.tensor([0, 1, 1, 0, 2])
    dist = torch.tensor([[0.0, 0.1, 0.2, 0.3, 0.4], [0.5, 0.0, 0.6, 0.1, 0.05]])
    query_labels = torch.tensor([0, 1])
    self_slot = torch.tensor([0, 1])
    # query 0 (self masked): order 1,2,3,4 -> first label-0 item (3) at rank 2
    # query 1 (self masked): order 4,3,0,2 -> first label-1 item (2) at rank 3
    rank = metrics.first_match_rank(dist, labels, query_labels, self_slot)
    assert rank.tolist() == [2, 3]
    assert metrics.recall_at(rank, 3).tolist() == [1.0, 0.0]
    assert metrics.top1_label_match(dist, labels, query_labels, self_slot).tolist() == [0.0, 0.0]
    assert metrics.retained(dist, torch.tensor([2, 3]), 1, self_slot).tolist() == [0.0, 0.0]
    assert metrics.retained(dist, torch.tensor([2, 3]), 2, self_slot).tolist() == [1.0, 1.0]
    # a query whose class has no other member is never recalled
    lonely = metrics.first_match_rank(dist[:1], labels, torch.tensor([2]), torch.tensor([4]))
    assert lonely.tolist() == [5]


def test_query_loss_by_hand_and_self_exclusion():
    dist = torch.tensor([[0.0, 0.4, 0.1, 0.3]])
    # QA+ on item 1: relu(0.4 - d) = [0.4, 0, 0.3, 0.1] -> mean 0.2
    assert query_loss(dist, torch.tensor([[1]]), "+").item() == pytest.approx(0.2)
    # without the own slot 0: (0 + 0.3 + 0.1) / 3
    assert query_loss(dist, torch.tensor([[1]]), "+", torch.tensor([0])).item() == pytest.approx(0.4 / 3)
    # QA- on item 2: relu(d - 0.1) = [0, 0.3, 0, 0.2] -> 0.125
    assert query_loss(dist, torch.tensor([[2]]), "-").item() == pytest.approx(0.125)


def test_gtm_reference_index_bug_vs_fixed():
    # gallery labels; the query sits at slot 0, its clean top-1 (slot 3) has label 1
    labels = torch.tensor([0, 0, 1, 1, 0, 2, 1])
    dist = torch.tensor([[0.0, 0.6, 0.5, 0.1, 0.3, 0.9, 0.2]])
    match, unmatch = greedy_pairs(dist, labels, torch.tensor([0]), reference=False)
    assert (match.item(), unmatch.item()) == (3, 4)  # nearest label-1 item, nearest other item
    bug_match, bug_unmatch = greedy_pairs(dist, labels, torch.tensor([0]), reference=True)
    # label-1 items in gallery order: 2, 3, 6 -> slot 3 is position 1 of that subset
    # other items: 0, 1, 4, 5 -> slot 4 is position 2 of that subset; used as global indices
    assert (bug_match.item(), bug_unmatch.item()) == (1, 2)


def test_adaptive_xi_is_capped_and_safe():
    # the reference's rates per dataset now live in the dataset records (SPQA's default rate)
    rates = {name: get_registry().get("datasets", name).attack_defaults.get("SPQA", {}).get("rate") for name in ("cars", "fashion", "mnist", "digits")}
    assert rates == {"cars": 7e4, "fashion": 4e4, "mnist": 2e4, "digits": None} and XI_RATE_DEFAULT == 2e4
    rate = rates["cars"]
    values = adaptive_xi(torch.tensor([0.0, 1e-5, 1.0, float("inf"), float("nan")]), rate)
    assert values[0].item() == pytest.approx(1.0)
    assert values[1].item() == pytest.approx(math.exp(0.7))
    assert values[2].item() == pytest.approx(1e9) and values[3].item() == pytest.approx(1e9)
    assert values[4].item() == pytest.approx(1e7)
    assert torch.isfinite(values).all()


def test_random_draws_depend_only_on_seed_and_index():
    index = torch.arange(1000, 1200)
    a = selection.randint(7, 1, index, 3, 50)
    b = selection.randint(7, 1, index.flip(0), 3, 50).flip(0)
    assert torch.equal(a, b)
    assert torch.equal(a[10:20], selection.randint(7, 1, index[10:20], 3, 50))
    assert not torch.equal(a, selection.randint(8, 1, index, 3, 50))
    assert not torch.equal(a, selection.randint(7, 2, index, 3, 50))


def test_randint_is_uniform_and_excludes_the_own_slot():
    index = torch.arange(40000)
    draw = selection.randint(0, 1, index, 1, 10)[:, 0]
    counts = torch.bincount(draw, minlength=10).double()
    chi2 = ((counts - 4000) ** 2 / 4000).sum().item()
    assert chi2 < 35  # 9 dof: p ~ 1e-4
    exclude = index % 10
    drawn = selection.randint(0, 1, index, 4, 10, exclude=exclude)
    assert not (drawn == exclude.view(-1, 1)).any()
    assert drawn.min() == 0 and drawn.max() == 9


def test_permutation_rows_are_permutations():
    perm = selection.permutation(3, 3, torch.arange(50), 17)
    assert torch.equal(perm.sort(dim=1).values, torch.arange(17).expand(50, 17))
    assert len({tuple(r) for r in perm.tolist()}) == 50


def test_top_fraction_matches_reference_on_large_galleries():
    assert selection.top_fraction(10000) == 100
    assert selection.top_fraction(5924) == 59
    assert selection.top_fraction(120) == 1
    assert selection.top_fraction(120, minimum=6) == 6
