"""Defenses: each inner attack moves its own objective the right way inside the ε-ball,
the outer loss trains only the weights, the BatchNorm policy and the compatibility checks.

The inner-attack tests use a tiny conv net (seconds on a CPU); the defended training steps
on ``digits`` with the real backbones live at the end and skip while those plugins are absent.
"""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import robrank
from robrank.records import BackboneRecord

from robrank.defenses.base import AdversarialDefense
from robrank.defenses.hardness import alignment, gradual_destination, hardness
from robrank.attacks.pgd import pgd_minimize
from robrank.defenses.inner import collapse_pairs, embedding_shift, embedding_shift_distance, inner_eval
from robrank.defenses.settings import pgd_defaults
from robrank.distances import embed_for_metric, paired
from robrank.errors import ConfigError
from robrank.losses import build_criterion, resolve_loss
from robrank.models import EmbeddingModel
from robrank.plugins import get_registry, load_plugins, use_host

EPS28 = 77 / 255


@pytest.fixture(scope="module")
def host():
    h = load_plugins(env={"ROBRANK_LOAD_PLUGINS": ""})
    with use_host(h):
        yield h


class Tiny(nn.Module):
    def __init__(self, dim: int = 16, bn: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, 6, 5, stride=2)]
        if bn:
            layers.append(nn.BatchNorm2d(6))
        layers += [nn.ReLU(), nn.Flatten(), nn.Linear(6 * 12 * 12, dim)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_batch(pairs: int = 8, classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(pairs).remainder(classes).repeat_interleave(2)
    images = torch.rand(2 * pairs, 1, 28, 28, generator=g)
    return images, labels


def make_model(metric: str, seed: int = 0, bn: bool = False) -> EmbeddingModel:
    torch.manual_seed(seed)
    return EmbeddingModel(Tiny(bn=bn), metric).train()


def criterion_for(name: str, host) -> nn.Module:
    return build_criterion(resolve_loss(name, registry=host.registry), registry=host.registry)


def defense(host, name: str, **options) -> AdversarialDefense:
    built = host.registry.create("defenses", name, **options)
    built.bind(host.registry)  # as the run plan does
    return built


def in_ball(x: torch.Tensor, x0: torch.Tensor, eps: float) -> bool:
    return bool((x - x0).abs().max() <= eps + 1e-6 and x.min() >= 0 and x.max() <= 1)


# ---------------------------------------------------------------- PGD machinery


def test_pgd_minimize_solves_a_box_constrained_linear_problem():
    """min Σ w·x over the ε-ball ∩ [0,1]: the optimum is x0 − ε·sign(w), clamped — reached in ⌈ε/α⌉ steps."""
    x0 = torch.tensor([0.5, 0.5, 0.02, 0.98, 0.5])
    w = torch.tensor([1.0, -1.0, 1.0, -1.0, 0.0])
    history: list[float] = []
    x = pgd_minimize(lambda x, _: (w * x).sum(), x0, eps=0.1, alpha=0.03, steps=5, history=history)
    assert torch.allclose(x, torch.tensor([0.4, 0.6, 0.0, 1.0, 0.5]), atol=1e-6)
    assert history == sorted(history, reverse=True) and len(history) == 5
    fgsm = pgd_minimize(lambda x, _: (w * x).sum(), x0, eps=0.1, alpha=0.03, steps=1)
    assert torch.allclose(fgsm, torch.tensor([0.4, 0.6, 0.0, 1.0, 0.5]), atol=1e-6)  # η = 1: one step of size ε


def test_pgd_minimize_early_stop_and_no_weight_gradients():
    model = make_model("N")
    images, _ = make_batch()
    history: list[float] = []
    pgd_minimize(lambda x, _: model(x).sum() * 0.0, images, eps=0.1, alpha=0.01, steps=10, early_stop=1e-7, history=history)
    assert len(history) == 2  # a flat objective stops after the second step
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())


def test_pgd_defaults_per_image_size():
    assert pgd_defaults(28) == (77 / 255, 3 / 255, 32)
    assert pgd_defaults(224) == (8 / 255, 1 / 255, 32)


@pytest.mark.parametrize("metric", ["C", "E", "N"])
def test_embedding_shift_grows_and_stays_in_ball(metric):
    model = make_model(metric)
    images, _ = make_batch()
    with inner_eval(model):
        clean = embed_for_metric(model(images), metric).detach()
        shifts = []
        for steps in (2, 6, 16):
            adv = embedding_shift(model, images, metric, eps=EPS28, alpha=3 / 255, steps=steps)
            assert in_ball(adv, images, EPS28) and not torch.equal(adv, images)
            shifts.append(paired(embed_for_metric(model(adv), metric), clean, metric).mean().item())
    assert model.training  # mode restored
    assert shifts[0] > 0 and shifts[1] > shifts[0] * 0.99 and shifts[2] > shifts[0]


def test_reference_pairwise_eps_starts_every_shift_in_one_direction():
    """torch's pairwise_distance measures ‖a − b + 1e-6‖; at the first ES step a − b is only the
    ±1e-7 noise, so the 1e-6 offset decides the gradient. For f(x) = Wx with W ≥ 0 (metric E) the
    input gradient of the shift is Wᵀ(d/‖d‖): with the offset every coordinate of d is positive,
    so every image takes the same FGSM step; with the exact distance d = −noise, and the images
    step in different directions."""
    torch.manual_seed(0)
    linear = nn.Linear(16, 8, bias=False)
    with torch.no_grad():
        linear.weight.uniform_(0.001, 0.01)  # embeddings near 0.04, where float32 still resolves 1e-7
    model = EmbeddingModel(nn.Sequential(nn.Flatten(), linear), "E").eval()
    images = torch.full((6, 1, 4, 4), 0.5)
    images += 0.01 * torch.rand(images.shape, generator=torch.Generator().manual_seed(1))
    steps = {}
    for eps in (1e-6, 0.0):
        torch.manual_seed(2)  # the same 1e-7 noise for both
        adv = embedding_shift(model, images, "E", eps=0.1, alpha=0.1, steps=1, pairwise_eps=eps)
        steps[eps] = torch.sign(adv - images).flatten(1)
    assert torch.equal(steps[1e-6], torch.ones_like(steps[1e-6]))  # the all-ones direction, for every image
    assert len({tuple(row.tolist()) for row in steps[0.0]}) > 1  # one direction per image


def test_est_and_ses_default_to_the_reference_pairwise_eps(host):
    for name in ("est", "ses"):
        assert defense(host, name).settings()["pairwise_eps"] == 1e-6
        assert defense(host, name, pairwise_eps="0").settings()["pairwise_eps"] == 0.0
        with pytest.raises(ConfigError, match="pairwise_eps must be a finite number >= 0"):
            defense(host, name, pairwise_eps="tiny")
        with pytest.raises(ConfigError, match="pairwise_eps"):
            defense(host, name, pairwise_eps=-1)


@pytest.mark.parametrize("metric", ["C", "E", "N"])
def test_collapse_pairs_shrinks_pn_distance(metric):
    model = make_model(metric).eval()
    images, _ = make_batch()
    p, n = images[0::2], images[1::2]
    before = paired(model.embed(p), model.embed(n), metric).mean().item()
    history: list[float] = []
    adv_p, adv_n = collapse_pairs(model, p, n, metric, eps=EPS28, alpha=3 / 255, steps=16, history=history)
    after = paired(model.embed(adv_p), model.embed(adv_n), metric).mean().item()
    assert history[0] == pytest.approx(before, rel=1e-5)
    assert after < 0.7 * before
    assert in_ball(adv_p, p, EPS28) and in_ball(adv_n, n, EPS28)


def test_ses_distance_follows_the_reference_per_metric():
    adv = torch.tensor([[3.0, 4.0]])
    ben = torch.tensor([[0.0, 2.0]])
    assert embedding_shift_distance(adv, ben, "N").item() == pytest.approx(((0.6 - 0) ** 2 + (0.8 - 1) ** 2) ** 0.5)
    assert embedding_shift_distance(adv, ben, "E").item() == pytest.approx(((0.6 - 0) ** 2 + (0.8 - 2) ** 2) ** 0.5)  # trick
    assert embedding_shift_distance(adv, ben, "C").item() == pytest.approx(1 - 0.8)


def test_hardness_and_gradual_destination():
    a = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[0.0, 1.0]])
    n = torch.tensor([[-1.0, 0.0]])
    assert hardness(a, p, n).item() == pytest.approx(2**0.5 - 2)
    assert gradual_destination(2.0) == pytest.approx(-0.2)
    assert gradual_destination(0.1) == pytest.approx(-0.1)
    assert gradual_destination(-1.0) == 0.0
    src = torch.tensor([-0.5, 0.3])
    assert alignment(src, torch.tensor(-0.2)).item() == pytest.approx(0.3**2 / 2)  # only the easier triplet counts


# ---------------------------------------------------------------- the defenses' inner attacks


def test_est_step_trains_on_es_adversarial_batch(host):
    model = make_model("N")
    crit = criterion_for("ptripletN", host)
    images, labels = make_batch()
    est = defense(host, "est", eps=EPS28, alpha=3 / 255, pgditer=8)
    seen: list[torch.Tensor] = []
    handle = model.register_forward_hook(lambda m, inp, out: seen.append((m.training, inp[0].detach().clone())))
    loss = est.loss(model, crit, images, labels)
    handle.remove()
    assert all(p.grad is None for p in model.parameters())  # the inner attack accumulated nothing
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    trained_on = seen[-1]
    assert trained_on[0] is True and trained_on[1].shape == images.shape
    assert in_ball(trained_on[1], images, EPS28) and not torch.equal(trained_on[1], images)
    assert not any(mode for mode, _ in seen[1:-1])  # inner PGD forwards all in eval mode
    assert est.logs["embshift"] > 0


@pytest.mark.parametrize("loss_name", ["ptripletN", "pmtripletC", "pcontrastE", "psnrN"])
def test_act_collapses_positive_negative_and_leaves_anchors(host, loss_name):
    metric = loss_name[-1]
    model = make_model(metric)
    crit = criterion_for(loss_name, host)
    images, labels = make_batch()
    act = defense(host, "act", eps=EPS28, alpha=3 / 255, pgditer=12)
    history: list[float] = []
    (anc, pos, neg), adv_p, adv_n, _ = act.perturb(model, crit, images, labels, history)
    assert torch.equal(anc, torch.arange(0, 16, 2))
    assert history[-1] < history[0]
    assert in_ball(adv_p, images[pos], EPS28) and in_ball(adv_n, images[neg], EPS28)
    seen: list[torch.Tensor] = []
    handle = model.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().clone()))
    loss = act.loss(model, crit, images, labels)
    handle.remove()
    outer = seen[-1]
    assert torch.equal(outer[: anc.numel()], images[anc])  # anchors are benign
    assert not torch.equal(outer[anc.numel() :], torch.cat([images[pos], images[neg]]))
    loss.backward()
    assert act.logs["d_pn_adv"] >= 0


def test_act_reference_miner_margin_quirk(host):
    crit = criterion_for("pmtripletN", host)
    act = defense(host, "act")
    assert act._miner(crit, "N").margin == 1.0  # reference: 1.0 for E and N
    assert act._miner(crit, "C").margin == 0.2
    assert defense(host, "act", miner_margin="loss")._miner(crit, "N") is crit.miner
    assert defense(host, "act", miner_margin=0.5)._miner(crit, "N").margin == 0.5


def test_hm_hardness_objective_decreases(host):
    model = make_model("N")
    crit = criterion_for("ptripletN", host)
    images, labels = make_batch(pairs=12)
    hm = defense(host, "hm", eps=EPS28, alpha=3 / 255, pgditer=10, src="random", dest="semihard")
    hm.previous_loss = 0.0  # g_LGA destination H_D = 0: every easy triplet is pushed towards d(a,p) = d(a,n)
    history: list[float] = []
    (sa, sp, sn), adv, dest = hm.perturb(model, crit, images, labels, history)
    assert dest.item() == 0.0
    assert history[0] > 0 and history[-1] < history[0]
    source = torch.cat([images[sa], images[sp], images[sn]])
    assert in_ball(adv, source, EPS28)
    with torch.no_grad():
        e0, e1 = model.eval().embed(source), model.embed(adv)
    k = sa.numel()
    h0, h1 = hardness(e0[:k], e0[k : 2 * k], e0[2 * k :]), hardness(e1[:k], e1[k : 2 * k], e1[2 * k :])
    assert h1.mean() > h0.mean()  # the triplets got harder
    model.train()


def test_hm_same_sampler_means_no_perturbation_and_gradual_state(host):
    model = make_model("N")
    crit = criterion_for("ptripletN", host)
    images, labels = make_batch()
    hm = defense(host, "hm", src="m", dest="spc2-semihard", pgditer=4)
    history: list[float] = []
    (sa, sp, sn), adv, _ = hm.perturb(model, crit, images, labels, history)
    assert hm.options["src"] == hm.options["dest"] == "semihard"
    assert torch.equal(adv, torch.cat([images[sa], images[sp], images[sn]])) and history == []
    hm2 = defense(host, "hm", pgditer=4, ics=True)
    assert hm2.previous_loss == 2.0
    loss = hm2.loss(model, crit, images, labels)
    assert hm2.previous_loss == pytest.approx(hm2.logs["loss_adv"])
    assert loss.item() == pytest.approx(hm2.logs["loss_adv"] + 0.5 * hm2.logs["loss_ics"], rel=1e-5)
    hm3 = defense(host, "hm")
    hm3.load_state_dict(hm2.state_dict())
    assert hm3.previous_loss == hm2.previous_loss


def test_ses_loss_is_benign_plus_shift(host):
    model = make_model("N")
    crit = criterion_for("ptripletN", host)
    images, labels = make_batch()
    ses = defense(host, "ses", pgditer=4)
    loss = ses.loss(model, crit, images, labels)
    assert loss.item() == pytest.approx(ses.logs["loss_benign"] + ses.logs["embshift"], rel=1e-4, abs=1e-3)
    assert ses.logs["embshift"] > 0
    loss.backward()


# ---------------------------------------------------------------- BN policy, options, checks


def test_batchnorm_policy(host):
    assert defense(host, "est").trains_batchnorm is True
    assert defense(host, "act").trains_batchnorm is False
    assert defense(host, "ses").trains_batchnorm is False
    assert defense(host, "hm").trains_batchnorm is False
    assert defense(host, "act", train_bn=True).trains_batchnorm is True
    assert defense(host, "est", train_bn=False).trains_batchnorm is False


@pytest.mark.parametrize("name", ["est", "act"])
def test_inner_attack_runs_bn_in_eval_and_respects_frozen_bn(host, name):
    """Frozen BN (the engine's choice when trains_batchnorm is False) stays in eval throughout;
    trained BN is in eval for the inner PGD and in train mode for the outer loss only."""
    model = make_model("N", bn=True)
    bn = model.backbone.net[1]
    d = defense(host, name, pgditer=3)
    if not d.trains_batchnorm:  # what the engine does for 224x224 backbones (config.freeze_bn)
        from robrank.models.backbone import freeze_batchnorm

        freeze_batchnorm(model.backbone)
    modes: list[bool] = []
    bn.register_forward_hook(lambda m, inp, out: modes.append(m.training))
    before = bn.running_mean.clone()
    d.loss(model, criterion_for("ptripletN", host), *make_batch())
    if d.trains_batchnorm:
        assert modes[-1] is True and not any(modes[1:-1]) and not torch.equal(before, bn.running_mean)
    else:
        assert not any(modes) and torch.equal(before, bn.running_mean)
    assert model.training


def test_unknown_and_bad_options_are_config_errors(host):
    with pytest.raises(ConfigError, match="no option 'epz'"):
        defense(host, "est", epz=0.1)
    with pytest.raises(ConfigError, match="pgditer"):
        defense(host, "act", pgditer=0)
    with pytest.raises(ConfigError, match="hm"):
        defense(host, "hm", src="nosuchminer")
    with pytest.raises(ConfigError, match="method"):
        defense(host, "hm", method="kl2")


def test_defaults_from_image_size(host):
    d = defense(host, "act", image_size=224)
    assert (d.eps, d.alpha, d.pgditer) == pytest.approx((8 / 255, 1 / 255, 32))
    d = defense(host, "est", pgditer=1)
    assert (d.eps, d.pgditer) == (pytest.approx(77 / 255), 1)
    hm = defense(host, "hm")
    assert hm.settings()["src"] == "softhard" and hm.settings()["dest"] == "semihard"
    assert hm.settings()["gradual"] is True and hm.settings()["ics"] is False


@pytest.mark.parametrize(
    "name,loss,pattern",
    [("act", "pmsC", "cannot train loss 'multisim'"), ("hm", "ptripletE", "metric N only"), ("hm", "pmsN", "multisim")],
)
def test_incompatible_combinations(host, name, loss, pattern):
    choice = resolve_loss(loss, registry=host.registry)
    with pytest.raises(ConfigError, match=pattern) as info:
        defense(host, name).check(choice.record, choice.metric)
    assert "\n" not in str(info.value)


def test_listed_with_constraints(host, robrank_cli):
    with use_host(host):
        result = robrank_cli("list", "defenses")
    assert result.exit_code == 0, result.output
    for name in ("est", "act", "ses", "hm", "none"):
        assert f"\n  {name} " in result.output
    assert "metric N" in result.output


# ---------------------------------------------------------------- defended training on digits (the engine)

COMBINATIONS = [
    ("c2f2", "est", "ptripletN", {}),
    ("c2f2", "act", "pmtripletN", {}),
    ("c2f2", "ses", "pcontrastN", {}),
    ("c2f2", "hm", "psnrN", {"ics": True}),
    ("lenet", "est", "psnrN", {}),
    ("lenet", "act", "pcontrastN", {}),
    ("lenet", "ses", "ptripletE", {}),
    ("lenet", "hm", "pmtripletN", {"src": "random", "dest": "hardest", "gradual": False}),
]


@pytest.mark.parametrize("backbone,name,loss,extra", COMBINATIONS)
def test_defended_training_steps_on_digits(tmp_path, host, backbone, name, loss, extra):
    from robrank.models.checkpoint import load_run
    from robrank.training import TrainConfig, train

    config = TrainConfig(
        dataset="digits", backbone=backbone, loss=loss, defense=name, defense_options={"pgditer": 2, **extra},
        batch_size=8, max_steps=2, run_dir=str(tmp_path / "run"), val_batch_size=128,
    )
    result = train(config, progress=False, registry=get_registry())
    assert result.steps == 2 and 0.0 <= result.metrics["R@1"] <= 1.0
    payload = json.loads((tmp_path / "run" / "config.json").read_text())
    saved = payload["config"]
    assert saved["defense"] == name and saved["defense_options"]["eps"] == pytest.approx(77 / 255)
    # the resolved options, defaults included (a run must say what it trained with)
    assert payload["defense_settings"]["pgditer"] == 2
    if name in ("est", "ses"):
        assert payload["defense_settings"]["pairwise_eps"] == 1e-6
    trained = load_run(tmp_path / "run", registry=get_registry()).model
    torch.manual_seed(0)
    from robrank.models.backbone import build_backbone

    fresh = build_backbone(backbone, registry=get_registry())
    changed = [not torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), trained.backbone.state_dict().values())]
    assert any(changed)  # the defended steps moved the weights


class TinyBN:
    """A 28x28 backbone with BatchNorm, registered for the BN-policy test only."""

    @robrank.hookimpl
    def register_backbones(self, register):
        register(BackboneRecord(
            name="tinybn", factory=lambda embedding_dim=16, pretrained=None, weights=None: Tiny(embedding_dim, bn=True),
            summary="test", input_size=28, channels=1, default_embedding_dim=16, has_batchnorm=True,
        ))


@pytest.mark.parametrize("name,frozen", [("est", False), ("act", True), ("ses", True), ("hm", True)])
def test_engine_applies_the_batchnorm_policy(tmp_path, register_plugin, name, frozen):
    """With freeze_bn on (the 224x224 default), EST trains BN statistics while ACT/SES/HM keep them."""
    from robrank.models.checkpoint import load_run
    from robrank.training import TrainConfig, train

    with register_plugin(TinyBN()):
        config = TrainConfig(
            dataset="digits", backbone="tinybn", loss="ptripletN", defense=name, defense_options={"pgditer": 2},
            batch_size=8, max_steps=1, freeze_bn=True, run_dir=str(tmp_path / "run"),
        )
        train(config, progress=False, registry=get_registry())
        bn = load_run(tmp_path / "run", registry=get_registry()).model.backbone.net[1]
    assert torch.equal(bn.running_mean, torch.zeros(6)) is frozen
    assert (int(bn.num_batches_tracked) == 0) is frozen
