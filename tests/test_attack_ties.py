"""Attack measures resolve ties against the defender: each equals the attacker's best case over
every order of the tied items (brute force over all permutations consistent with the distances)."""
from __future__ import annotations

import itertools

import pytest
import torch

from robrank.attacks import metrics


def _orders(row: list[float], items: list[int]):
    """Every ranking of ``items`` (nearest first) consistent with the distances ``row``."""
    for order in itertools.permutations(items):
        if all(row[a] <= row[b] for a, b in zip(order, order[1:])):
            yield order


def _quantised(seed: int, rows: int, n: int, levels: int = 3) -> torch.Tensor:
    return torch.randint(0, levels, (rows, n), generator=torch.Generator().manual_seed(seed)).float()


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("exclude", [False, True])
def test_query_rank_is_the_attackers_best_tie_order(seed, exclude):
    dist = _quantised(seed, 3, 6)
    targets = torch.tensor([[1, 4], [2, 3], [5, 0]])
    own = torch.tensor([0, 1, 2]) if exclude else None
    for ties_ahead in (False, True):  # QA- pushes targets down (ties ahead), QA+ pulls them up
        got = metrics.query_rank(dist, targets, own, ties_ahead=ties_ahead)
        for b in range(3):
            items = [j for j in range(6) if own is None or j != int(own[b])]
            for m in range(2):
                t = int(targets[b, m])
                if own is not None and t == int(own[b]):
                    continue
                positions = [order.index(t) for order in _orders(dist[b].tolist(), items)]
                assert int(got[b, m]) == (max(positions) if ties_ahead else min(positions))


@pytest.mark.parametrize("seed", range(5))
def test_candidate_prank_is_the_attackers_best_tie_order(seed):
    gal = _quantised(seed, 2, 5).view(1, 2, 5)
    cand = torch.tensor([[1.0, 2.0]])
    for ties_ahead in (False, True):
        got = float(metrics.candidate_prank(cand, gal, ties_ahead=ties_ahead))
        ranks = []
        for j in range(2):
            row = gal[0, j].tolist() + [float(cand[0, j])]  # the candidate is item 5
            positions = [order.index(5) for order in _orders(row, list(range(6)))]
            ranks.append(max(positions) if ties_ahead else min(positions))
        assert got == pytest.approx(sum(ranks) / 2 / 5)


def test_candidate_own_slot_is_not_a_rival():
    # the clean candidate is at exactly its own slot's distance: the slot is the candidate itself
    gal = torch.tensor([[[0.5, 0.2, 0.9]]])
    cand = torch.tensor([[0.5]])  # own slot is item 0
    own = torch.tensor([[0.5]])
    assert float(metrics.candidate_prank(cand, gal, ties_ahead=True, own_to_query=own)) == pytest.approx(1 / 3)
    assert float(metrics.candidate_prank(cand, gal, ties_ahead=True)) == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", range(6))
def test_label_measures_are_the_attackers_best_tie_order(seed):
    dist = _quantised(seed, 4, 6)
    labels = torch.tensor([0, 1, 0, 1, 2, 0])
    query_labels = torch.tensor([0, 1, 2, 0])
    own = torch.tensor([0, 1, 4, 5])
    target = torch.tensor([2, 3, 0, 1])
    rank = metrics.first_match_rank(dist, labels, query_labels, own)
    match = metrics.top1_label_match(dist, labels, query_labels, own)
    kept = {k: metrics.retained(dist, target, k, own) for k in (1, 2)}
    for b in range(4):
        items = [j for j in range(6) if j != int(own[b])]
        orders = list(_orders(dist[b].tolist(), items))
        firsts = [next((i for i, j in enumerate(o) if int(labels[j]) == int(query_labels[b])), 6) for o in orders]
        assert int(rank[b]) == max(firsts)  # ES: the attack pushes the first match down
        assert float(match[b]) == min(float(int(labels[o[0]]) == int(query_labels[b])) for o in orders)
        for k, values in kept.items():
            assert float(values[b]) == min(float(int(target[b]) in o[:k]) for o in orders)


def test_classifier_accuracy_and_target_hit_on_tied_logits():
    from robrank_plugins.attacks.classify import _on_top

    logits = torch.tensor([[1.0, 1.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 0, 2])
    assert _on_top(logits, labels, ties_win=False).tolist() == [False, True, False]  # accuracy: a tie is an error
    assert _on_top(logits, torch.tensor([1, 1, 0]), ties_win=True).tolist() == [True, False, True]  # a tied target is hit


def test_continuous_distances_unchanged():
    g = torch.Generator().manual_seed(3)
    dist = torch.rand(4, 50, generator=g)
    targets = torch.randint(0, 50, (4, 3), generator=g)
    assert torch.equal(metrics.query_rank(dist, targets, ties_ahead=True), metrics.query_rank(dist, targets))
