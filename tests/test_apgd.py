"""APGD, the worst case over searches, the budget and the L2 threat model, on tiny models."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robrank.attacks import Gallery, build_attack, merge_results, parse_spec, run_attack
from robrank.attacks.apgd import apgd_minimize, checkpoints
from robrank.attacks.ensemble import combine
from robrank.attacks.pgd import Budget, pgd_minimize, project
from robrank.errors import SpecError

from test_attacks import ALL_SPECS, toy_dataset, toy_model
from robrank.plugins import get_registry

PGD = "eps=0.1:alpha=0.02:pgditer=6"


def outcome_of(spec: str, model, data, count: int = 32, semantics: str = "reference"):
    attack = build_attack(parse_spec(spec, registry=get_registry()), semantics=semantics, registry=get_registry())
    gallery = Gallery.compute(model, data)
    index = torch.arange(count)
    images = data.images(index)
    return attack, images, attack(model, gallery, images, data.labels[index], index, seed=0, self_slot=index)


# ---------------------------------------------------------------------------- the schedule


def test_checkpoints_are_the_papers():
    # p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (Croce & Hein 2020, section 3.2)
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    # 32 steps, rounded as AutoAttack rounds: first int(0.22*32) = 7, periods shrink by 1 down to 1
    assert checkpoints(32) == [7, 13, 18, 22, 25, 27, 28, 29, 30, 31]
    assert checkpoints(1) == []


def test_apgd_halves_the_step_and_converges_where_fixed_steps_oscillate():
    # minimise ||x - c||^2 with c inside the ball: sign steps of fixed size alpha keep
    # oscillating at distance ~alpha per pixel; APGD halves its step on the stalls
    torch.manual_seed(0)
    x0 = torch.full((4, 1, 6, 6), 0.5)
    c = x0 + 0.07 * (2 * torch.rand_like(x0) - 1)
    objective = lambda x, _: ((x - c) ** 2).flatten(1).sum(dim=1)  # noqa: E731
    pgd = pgd_minimize(objective, x0, eps=0.1, alpha=0.05, steps=40)
    apgd = apgd_minimize(objective, x0, eps=0.1, steps=40).x
    pgd_err, apgd_err = (pgd - c).abs().max(), (apgd - c).abs().max()
    assert apgd_err < 0.01 < pgd_err


def test_apgd_never_ends_worse_than_its_start():
    # a non-convex objective with a judge that disagrees with it: the result is the best
    # point by the judge (objective second), and the start is one of the candidates
    torch.manual_seed(1)
    x0 = torch.rand(16, 1, 5, 5)
    w = torch.randn(1, 1, 5, 5)
    seen: list[torch.Tensor] = []

    def objective(x, _):
        seen.append(x.detach().clone())
        return torch.sin(8 * (x * w).flatten(1).sum(dim=1))

    measure = lambda x: (x - 0.5).flatten(1).abs().sum(dim=1, keepdim=True).round()  # noqa: E731
    judge = lambda: measure(seen[-1])  # noqa: E731
    start_key = measure(x0)
    history: list[float] = []
    best = apgd_minimize(objective, x0, eps=0.2, steps=12, judge=judge, history=history)
    assert len(history) == 12
    final_key = measure(best.x)
    assert torch.all(final_key <= start_key)
    # and by the judge it is the best iterate evaluated, per sample
    every = torch.stack([(x - 0.5).flatten(1).abs().sum(dim=1).round() for x in seen])
    assert torch.equal(final_key[:, 0], every.amin(dim=0))


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_apgd_attack_is_never_weaker_than_the_clean_point(spec):
    model, data = toy_model("C", double=True), toy_dataset()
    attack, _, outcome = outcome_of(f"{spec}:{PGD}:opt=apgd:restarts=2", model, data)
    primary, direction = next(iter(attack.success().items()))
    assert primary in outcome.adv
    if primary in outcome.orig:
        assert torch.all(direction * (outcome.adv[primary] - outcome.orig[primary]) >= -1e-9)


# ---------------------------------------------------------------------------- worst case


@pytest.mark.parametrize("spec", ["CA:pm=+:W=1", "CA:pm=-:W=2", "QA:pm=+:M=2", "QA:pm=-:M=1", "TMA", "ES", "LTM", "GTM", "GTT"])
def test_worst_case_is_never_weaker_than_any_member_per_sample(spec):
    model, data = toy_model("C"), toy_dataset()
    attack, images, outcome = outcome_of(f"{spec}:{PGD}:opt=worst", model, data)
    assert list(outcome.members) == ["pgd", "apgd", "apgd-smooth"]
    for key, direction in attack.success().items():
        for name, member in outcome.members.items():
            assert torch.all(direction * (outcome.adv[key] - member[key]) >= 0), (key, name)
        # the winner recorded per sample holds the value that was kept
        stack = torch.stack([m[key] for m in outcome.members.values()])
        assert torch.equal(stack.gather(0, outcome.wins[key].view(1, -1))[0], outcome.adv[key])
    # the pgd member is the plain attack: same numbers as running it alone
    _, _, plain = outcome_of(f"{spec}:{PGD}", model, data)
    for key, value in plain.adv.items():
        assert torch.allclose(outcome.members["pgd"][key], value)
    assert (outcome.adversarial - images).abs().max() <= 0.1 + 1e-6


def test_combine_takes_each_measure_from_its_strongest_member_and_ties_go_first():
    members = [
        {"r@1": torch.tensor([1.0, 0.0, 1.0]), "embshift": torch.tensor([0.5, 0.1, 0.2]), "loss": torch.tensor([1.0, 2.0, 3.0])},
        {"r@1": torch.tensor([0.0, 0.0, 1.0]), "embshift": torch.tensor([0.4, 0.3, 0.2]), "loss": torch.tensor([4.0, 5.0, 6.0])},
    ]
    images = [torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2)]
    chosen, summary, wins = combine(members, images, {"r@1": -1, "embshift": 1})
    assert summary["r@1"].tolist() == [0.0, 0.0, 1.0]
    assert summary["embshift"].tolist() == pytest.approx([0.5, 0.3, 0.2])
    assert wins["r@1"].tolist() == [1, 0, 0] and wins["embshift"].tolist() == [0, 1, 0]
    # images and other metrics: the member strongest on (r@1, then embshift)
    assert summary["loss"].tolist() == [4.0, 5.0, 3.0]
    assert chosen[:, 0, 0, 0].tolist() == [1.0, 1.0, 0.0]


# ---------------------------------------------------------------------------- budget


class CountingModel(nn.Module):
    """Counts the images the backbone sees with and without gradient tracking."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.metric = inner.metric
        self.with_grad = self.without_grad = 0

    def forward(self, x):
        if torch.is_grad_enabled() and x.requires_grad:
            self.with_grad += x.shape[0]
        else:
            self.without_grad += x.shape[0]
        return self.inner(x)


@pytest.mark.parametrize("extra, gradients, forwards", [
    ("", 6, 1),
    (":opt=apgd:restarts=3", 18, 1),
    (":restarts=2", 12, 2 + 1),  # PGD restarts: each run's last iterate is judged by a forward
    (":opt=worst", 18, 3),
    (":opt=worst:restarts=3", 6 + 6 + 2 * 3, 3),
])
def test_budget_counts_every_model_pass(extra, gradients, forwards):
    data = toy_dataset()
    model = CountingModel(toy_model("C"))
    gallery = Gallery.compute(model, data)
    model.with_grad = model.without_grad = 0
    result = run_attack(model, data, f"CA:pm=+:W=1:{PGD}{extra}", gallery=gallery, batch_size=20, progress=False, registry=get_registry())
    assert result.budget == {"gradients": gradients, "forwards": forwards}
    assert model.with_grad == gradients * len(data)
    assert model.without_grad == forwards * len(data)
    shards = [run_attack(model, data, f"CA:pm=+:W=1:{PGD}{extra}", gallery=gallery, indices=part, progress=False, registry=get_registry()) for part in (range(0, 40), range(40, 64))]
    merged = merge_results(shards)
    assert merged.budget == result.budget and merged.wins == result.wins
    for name, member in result.members.items():
        assert merged.members[name]["adv"] == pytest.approx(member["adv"])


# ---------------------------------------------------------------------------- L2


def test_l2_projection():
    torch.manual_seed(2)
    x0 = torch.rand(8, 3, 4, 4)
    x = x0 + torch.randn_like(x0)
    p = project(x, x0, 0.5, 2.0)
    norms = (p - x0).flatten(1).norm(dim=1)
    assert torch.all(norms <= 0.5 + 1e-6) and p.min() >= 0 and p.max() <= 1
    inside = x0 + 0.01 * torch.randn_like(x0) / 10
    inside = inside.clamp(0, 1)
    assert torch.allclose(project(inside, x0, 0.5, 2.0), inside)
    # away from the [0, 1] walls the projection is the radial one onto the sphere
    mid = torch.full((1, 1, 4, 4), 0.5)
    far = mid + torch.tensor([0.3, -0.4] + [0.0] * 14).view(1, 1, 4, 4)  # ||delta|| = 0.5
    assert torch.allclose(project(far, mid, 0.25, 2.0), mid + (far - mid) * 0.5)


def test_l2_pgd_solves_a_linear_problem_and_attacks_stay_in_the_ball():
    x0 = torch.full((2, 1, 3, 3), 0.5)
    w = torch.randn(1, 1, 3, 3, generator=torch.Generator().manual_seed(3))
    x = pgd_minimize(lambda x, _: (w * x).flatten(1).sum(dim=1), x0, eps=0.3, alpha=0.1, steps=10, norm=2.0)
    assert torch.allclose(x, x0 - 0.3 * w / w.norm(), atol=1e-5)
    model, data = toy_model("C"), toy_dataset()
    for spec in ("CA:pm=+:W=1", "ES", "GTM"):
        for opt in ("", ":opt=apgd"):
            _, images, outcome = outcome_of(f"{spec}:eps=0.5:alpha=0.1:pgditer=6:norm=2{opt}", model, data)
            norms = (outcome.adversarial - images).flatten(1).norm(dim=1)
            assert torch.all(norms <= 0.5 + 1e-5) and norms.max() > 0.25


def test_l2_random_start_lies_on_the_sphere_and_is_reproducible():
    model, data = toy_model("C"), toy_dataset()
    attack = build_attack(parse_spec("ES:eps=0.3:alpha=0.0:pgditer=1:norm=2", registry=get_registry()), random_start=True, registry=get_registry())
    gallery = Gallery.compute(model, data)
    index = torch.arange(6)
    ctx = attack.context(model, gallery, data.images(index), data.labels[index], index, seed=0, self_slot=index)
    a, b = (attack.random_point(data.images(index), ctx, 5) for _ in range(2))
    assert torch.equal(a, b)
    norms = (a - data.images(index)).flatten(1).norm(dim=1)
    assert torch.all(norms <= 0.3 + 1e-6) and norms.min() > 0.2  # clamping only shortens a little


# ---------------------------------------------------------------------------- spec fields


def test_search_fields_parse_and_defaults_are_never_spelled_out():
    assert parse_spec("CA:pm=+:W=1:opt=pgd:norm=inf:loss=reference", registry=get_registry()).text == parse_spec("CA:pm=+:W=1", registry=get_registry()).text
    text = parse_spec("ES:opt=worst:restarts=3:norm=2:loss=smooth", registry=get_registry()).text
    assert text.endswith(":norm=2:opt=worst:loss=smooth:restarts=3")
    attack = build_attack(parse_spec(text, registry=get_registry()), registry=get_registry())
    assert attack.lp == 2.0 and attack.opt == "worst" and attack.restarts == 3
    assert build_attack(parse_spec("ES", registry=get_registry()), registry=get_registry()).lp == math.inf


def test_the_eps_bound_follows_the_norm():
    # an L2 radius above 1 is ordinary (rob28-l2 uses 2.0); an L-infinity one is not
    assert build_attack(parse_spec("ES:eps=2.0:norm=2", registry=get_registry()), registry=get_registry()).eps == 2.0
    with pytest.raises(SpecError, match="at most 1.0 under norm=inf"):
        parse_spec("ES:eps=2.0", registry=get_registry())


@pytest.mark.parametrize("spec, message", [
    ("ES:opt=adam", "field opt must be pgd or apgd or worst"),
    ("ES:norm=1", "field norm must be inf or 2"),
    ("ES:loss=ce", "field loss must be reference or smooth"),
    ("ES:restarts=0", "field restarts must be a whole number >= 1"),
])
def test_bad_search_fields_are_one_line_errors(spec, message):
    with pytest.raises(SpecError, match=message):
        build_attack(parse_spec(spec, registry=get_registry()), registry=get_registry())


def test_every_score_column_is_judged_by_its_own_metric():
    # the worst case keeps, per sample, the strongest value of each success measure: that is
    # the per-column worst case only if each column's metric is one of its attack's measures
    from robrank.plugins import get_registry

    registry = get_registry()
    score = registry.get("profiles", "rob28-aa").score
    matched = []
    for spec in registry.get("profiles", "rob28-aa").factory():
        parsed = parse_spec(spec, registry=get_registry())
        attack = build_attack(parsed, registry=get_registry())
        fields = {k: str(v) for k, v in parsed.params.items()}
        for column in score.columns:
            if column.matches(parsed.type, fields):
                assert column.metric in attack.success(), (column.label, spec)
                matched.append(column.label)
    assert sorted(matched) == sorted(c.label for c in score.columns)


def test_stronger_profiles_keep_the_ten_columns():
    from robrank.plugins import get_registry

    registry = get_registry()
    rob28, aa = (registry.get("profiles", n) for n in ("rob28", "rob28-aa"))
    assert aa.score is rob28.score and aa.image_size == rob28.image_size
    assert aa.factory() == [f"{s}:opt=worst" for s in rob28.factory()]
    for name in ("rob224-aa", "rob28-l2", "rob224-l2"):
        record = registry.get("profiles", name)
        assert record.score is rob28.score and len(record.factory()) == 9
        assert all(parse_spec(s, registry=get_registry()).text == s for s in record.factory())
    l2 = [parse_spec(s, registry=get_registry()) for s in registry.get("profiles", "rob28-l2").factory()]
    assert {(p.params["norm"], p.params["eps"]) for p in l2} == {("2", 2.0)}


# ---------------------------------------------------------------------------- swipe and report


def test_rob28_aa_swipe_records_members_and_winners_and_is_never_weaker(tmp_path):
    from click.testing import CliRunner

    from robrank.cli import cli
    from robrank.swipe import swipe
    from robrank.swipe.schema import load_results
    from robrank.testing import write_untrained_run

    untrained_run = write_untrained_run(tmp_path / "digits-lenet", backbone="lenet")

    plain = load_results(swipe(untrained_run, "rob28", max_batches=1, batch_size=3, progress=False, registry=get_registry()), registry=get_registry())
    strong = load_results(swipe(untrained_run, "rob28-aa", max_batches=1, batch_size=3, progress=False, registry=get_registry()), registry=get_registry())
    for base, entry in zip(plain["attacks"], strong["attacks"]):
        assert entry["spec"] == base["spec"] + ":opt=worst"
        assert entry["budget"] == {"gradients": 96.0, "forwards": 3.0} and base["budget"] == {"gradients": 32.0, "forwards": 1.0}
        assert set(entry["members"]) == {"pgd", "apgd", "apgd-smooth"}
        assert entry["members"]["pgd"]["adv"] == pytest.approx(base["adv"])
        for key, counts in entry["wins"].items():
            assert sum(counts.values()) == entry["count"]
    # every rescaled column (0 = broken) is at most rob28's
    for key, value in strong["ers"]["rescaled"].items():
        assert value <= plain["ers"]["rescaled"][key] + 1e-9, key
    assert "winners" not in plain
    assert set(strong["winners"]) == {"CA+", "CA-", "QA+", "QA-", "TMA", "ES:D", "ES:R", "LTM", "GTM", "GTT"}
    assert strong["winners"]["ES:D"] == strong["attacks"][5]["wins"]["embshift"]
    text = CliRunner().invoke(cli, ["report", str(untrained_run / "swipe-rob28.json"), str(untrained_run / "swipe-rob28-aa.json")]).output
    assert "/rob28 " in text and "/rob28-aa " in text
    cost = text[text.index("Search cost"):].splitlines()
    assert cost[3].split()[1] == "288" and cost[4].split()[1] == "864"


def test_variants_are_never_a_datasets_default_profile():
    import dataclasses

    from robrank.plugins import get_registry
    from robrank.swipe.runner import profile_for_dataset

    registry = get_registry()
    anonymous = dataclasses.replace(registry.get("datasets", "digits"), profile=None)
    assert profile_for_dataset(anonymous, registry).name == "rob28"
    assert registry.get("profiles", "rob28-aa").variant_of == "rob28"
