"""Miners: the invariants of each rule on SPC-2 batches, fallbacks, and sampling weights."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from robrank.plugins import load_plugins
from robrank_plugins.losses.mining import (
    DistanceSwitchMiner,
    DistanceWeightedMiner,
    HardestMiner,
    RandomMiner,
    SemihardMiner,
    SofthardMiner,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matrices: thread hand-offs would cost more than the work on a shared CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def spc2_batch(pairs: int = 12, classes: int = 4, dim: int = 8, seed: int = 0, metric: str = "N"):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(classes, (pairs,), generator=g).repeat_interleave(2)
    emb = torch.randn(2 * pairs, dim, generator=g)
    if metric in ("C", "N"):
        emb = F.normalize(emb, dim=-1)
    return emb, labels


def dist(emb: torch.Tensor, metric: str) -> torch.Tensor:
    if metric == "C":
        return 1 - emb @ emb.T
    return torch.cdist(emb, emb)


ALL = [RandomMiner, SemihardMiner, SofthardMiner, HardestMiner, DistanceWeightedMiner, DistanceSwitchMiner]


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("metric", ["C", "E", "N"])
def test_shapes_anchors_and_labels(cls, metric):
    emb, labels = spc2_batch(metric=metric)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        a, p, n = cls(metric, None, generator=g)(emb, labels)
        assert a.dtype == p.dtype == n.dtype == torch.long
        assert a.shape == p.shape == n.shape == (12,)
        assert torch.equal(a, torch.arange(0, 24, 2))
        switched = torch.equal(p, a)
        if switched:  # distance-switch's (anchor, anchor, positive)
            assert cls is DistanceSwitchMiner and torch.equal(n, a + 1)
            continue
        assert (labels[p] == labels[a]).all()
        assert (p != a).all()
        has_negative = (labels.unsqueeze(0) != labels[a].unsqueeze(1)).any(dim=1)
        assert (labels[n] != labels[a])[has_negative].all()


def test_random_miner_positive_is_partner_and_negatives_vary():
    emb, labels = spc2_batch()
    miner = RandomMiner("N", generator=torch.Generator().manual_seed(0))
    seen = set()
    for _ in range(20):
        a, p, n = miner(emb, labels)
        assert torch.equal(p, a + 1)
        seen.add(int(n[0]))
    assert len(seen) > 2


def test_fallback_when_the_batch_has_one_class():
    emb, _ = spc2_batch(pairs=3)
    labels = torch.zeros(6, dtype=torch.long)
    for cls in ALL:
        a, p, n = cls("N", 0.2)(emb, labels)
        assert ((n >= 0) & (n < 6)).all()


@pytest.mark.parametrize("metric", ["C", "E", "N"])
def test_semihard_negatives_are_semihard(metric):
    margin = {"C": 0.2, "N": 0.2, "E": 1.0}[metric]
    emb, labels = spc2_batch(pairs=16, classes=3, metric=metric, seed=3)
    d = dist(emb, metric)
    miner = SemihardMiner(metric, margin, generator=torch.Generator().manual_seed(0))
    checked = 0
    for _ in range(10):
        a, p, n = miner(emb, labels)
        for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist()):
            dap = d[ai, pi]
            diff = labels != labels[ai]
            semi = diff & (dap < d[ai]) & (dap - d[ai] + margin > 0)
            assert labels[ni] != labels[ai]
            if semi.any():
                assert semi[ni], (ai, ni)
                checked += 1
    assert checked > 20


def test_semihard_uses_the_given_margin():
    # anchor at 0, partner at distance 1 on a line, negatives at 1.5 and 3 (metric E)
    emb = torch.tensor([[0.0], [1.0], [1.5], [1.5], [3.0], [3.0]])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    for _ in range(10):
        assert SemihardMiner("E", 1.0)(emb, labels)[2][0].item() in (2, 3)  # 1 - 1.5 + 1 > 0; 1 - 3 + 1 < 0
    with_big_margin = {SemihardMiner("E", 2.5)(emb, labels)[2][0].item() for _ in range(40)}
    assert with_big_margin == {2, 3, 4, 5}


@pytest.mark.parametrize("metric", ["C", "E", "N"])
def test_hardest_is_the_closest_other_label_item(metric):
    emb, labels = spc2_batch(pairs=16, classes=4, metric=metric, seed=5)
    d = dist(emb, metric)
    a, p, n = HardestMiner(metric)(emb, labels)
    for ai, ni in zip(a.tolist(), n.tolist()):
        masked = d[ai].masked_fill(labels == labels[ai], float("inf"))
        assert ni == int(masked.argmin())
    assert torch.equal(p, a + 1)


@pytest.mark.parametrize("metric", ["C", "E", "N"])
def test_softhard_conditions(metric):
    emb, labels = spc2_batch(pairs=16, classes=3, metric=metric, seed=7)
    # give each class more than two members so the positive choice is not trivial
    d2 = dist(emb, metric).pow(2)
    miner = SofthardMiner(metric, generator=torch.Generator().manual_seed(0))
    negatives_checked = positives_checked = 0
    for _ in range(10):
        a, p, n = miner(emb, labels)
        for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist()):
            same = labels == labels[ai]
            max_ap2 = d2[ai][same].max()
            min_an2 = d2[ai][~same].min()
            soft_neg = (~same) & (d2[ai] < max_ap2)
            soft_pos = same & (d2[ai] > min_an2)
            assert labels[ni] != labels[ai] and labels[pi] == labels[ai]
            if soft_neg.any():
                assert soft_neg[ni]
                negatives_checked += 1
            if soft_pos.any():
                assert soft_pos[pi]
                positives_checked += 1
            else:
                assert pi == ai + 1  # fallback: the partner
    assert negatives_checked > 10 and positives_checked > 10


def test_distance_weighted_never_picks_same_label_with_many_classes():
    emb, labels = spc2_batch(pairs=32, classes=16, dim=16, seed=11)
    miner = DistanceWeightedMiner("N", generator=torch.Generator().manual_seed(0))
    for _ in range(20):
        a, _, n = miner(emb, labels)
        assert (labels[n] != labels[a]).all()


def test_distance_weighted_probabilities_follow_inverse_q():
    # dim 3: log q^-1 = -log d, so P(n) ∝ 1/d. Negatives of class 1 at d=0.5, of class 2 at d=1.
    def on_sphere(d: float) -> list[float]:
        theta = 2 * math.asin(d / 2)
        return [math.cos(theta), math.sin(theta), 0.0]

    emb = torch.tensor([on_sphere(0.0), on_sphere(0.3), on_sphere(0.5), on_sphere(0.5), on_sphere(1.0), on_sphere(1.0)])
    emb[5, 2], emb[5, 1] = emb[4, 1], 0.0  # same distance from the anchor, other direction
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert dist(emb, "N")[0, 5].item() == pytest.approx(1.0, abs=1e-5)
    miner = DistanceWeightedMiner("N", generator=torch.Generator().manual_seed(0))
    draws = torch.stack([miner(emb, labels)[2][0] for _ in range(1500)])
    frac_close = (labels[draws] == 1).float().mean().item()
    assert frac_close == pytest.approx(2 / 3, abs=0.04)


def test_distance_switch_replaces_triplets_with_p_015():
    emb, labels = spc2_batch()
    miner = DistanceSwitchMiner("N", generator=torch.Generator().manual_seed(0))
    switched = 0
    for _ in range(300):
        a, p, n = miner(emb, labels)
        if torch.equal(p, a):
            assert torch.equal(n, a + 1)
            switched += 1
    assert switched / 300 == pytest.approx(0.15, abs=0.05)
    assert DistanceWeightedMiner.p_switch <= 0


def test_miners_do_not_build_graphs():
    emb, labels = spc2_batch()
    emb.requires_grad_(True)
    for cls in ALL:
        for t in cls("N")(emb, labels):
            assert not t.requires_grad


def test_miner_registry_letters(monkeypatch):
    monkeypatch.setenv("ROBRANK_LOAD_PLUGINS", "")
    registry = load_plugins().registry
    letters = {c.name: c.record.letter for c in registry.components("miners")}
    assert letters == {
        "random": "",
        "semihard": "m",
        "softhard": "s",
        "distance": "d",
        "distance-switch": "D",
        "hardest": "h",
    }
    assert registry.get("miners", "spc2-semihard").name == "semihard"
    assert registry.get("miners", "distance-weighted").name == "distance"
    miner = registry.create("miners", "semihard", "N", 0.2)
    assert miner.margin == 0.2 and miner.metric == "N"
