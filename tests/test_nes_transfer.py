"""Black-box NES estimation and transfer attacks (issue 16 B), on tiny models."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from robrank.attacks import build_attack, parse_spec, run_attack
from robrank.attacks.nes import REFERENCE, NESSettings, nes_gradient, probe_shape, query_count
from robrank.attacks.pgd import autograd_gradient, pgd_minimize
from robrank.errors import SpecError
from robrank.models import EmbeddingModel

from test_attacks import toy_dataset, toy_model
from robrank.plugins import get_registry


def smooth_losses(seed: int = 0):
    """A smooth per-sample objective of 1x12x12 images (tanh MLP) and its autograd gradient."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(144, 16), nn.Tanh(), nn.Linear(16, 1)).double()

    def losses(x: torch.Tensor, step: int) -> torch.Tensor:
        return net(x).view(-1)

    return losses


def test_nes_estimate_points_along_the_true_gradient():
    losses = smooth_losses()
    gen = torch.Generator().manual_seed(1)
    x0 = 0.25 + 0.5 * torch.rand(16, 1, 12, 12, generator=gen, dtype=torch.float64)  # inside (0, 1): probes are never clipped by the box
    eps = 0.05
    _, estimate = nes_gradient(losses, x0, eps=eps, seed=0, index=torch.arange(16))(x0, 0)
    _, true = autograd_gradient(lambda x, step: losses(x, step).sum())(x0, 0)
    cosine = torch.nn.functional.cosine_similarity(estimate.flatten(1), true.flatten(1), dim=1)
    # 100 probes in 144 dimensions: a random direction would give |cos| ~ 0.08
    assert cosine.min() > 0.3, cosine
    assert cosine.mean() > 0.5, cosine
    # a sign step uses the signs: most pixels agree (chance: half)
    assert (estimate.sign() == true.sign()).double().mean() > 0.6


def test_nes_probes_are_antithetic_reproducible_and_batch_independent():
    losses = smooth_losses()
    x0 = torch.full((6, 1, 12, 12), 0.5, dtype=torch.float64)
    index = torch.tensor([3, 9, 14, 20, 21, 40])
    full = nes_gradient(losses, x0, eps=0.1, seed=7, index=index)(x0, 2)[1]
    again = nes_gradient(losses, x0, eps=0.1, seed=7, index=index)(x0, 2)[1]
    part = nes_gradient(losses, x0[2:4], eps=0.1, seed=7, index=index[2:4])(x0[2:4], 2)[1]
    assert torch.equal(full, again)
    assert torch.allclose(full[2:4], part, atol=1e-12, rtol=0)
    other_step = nes_gradient(losses, x0, eps=0.1, seed=7, index=index)(x0, 3)[1]
    assert not torch.equal(full, other_step)
    # a constant objective has a zero estimate exactly (antithetic pairs cancel)
    zero = nes_gradient(lambda x, s: torch.zeros(x.shape[0], dtype=x.dtype), x0, eps=0.1, seed=7, index=index)(x0, 0)[1]
    assert torch.count_nonzero(zero) == 0


def test_nes_queries_stay_in_the_threat_model_and_are_counted():
    seen: list[torch.Tensor] = []

    def losses(x: torch.Tensor, step: int) -> torch.Tensor:
        seen.append(x.clone())
        return x.flatten(1).sum(1)

    x0 = torch.rand(3, 1, 12, 12, dtype=torch.float64)
    eps = 0.03
    settings = NESSettings(population=10)
    x = pgd_minimize(lambda x, s: losses(x, s).sum(), x0, eps=eps, alpha=settings.step, steps=settings.iterations(4),
                     gradient=nes_gradient(losses, x0, eps=eps, seed=0, index=torch.arange(3), settings=settings))
    assert len(seen) == settings.population * settings.iterations(4)
    for q in seen:
        assert (q - x0).abs().max() <= eps + 1e-12 and q.min() >= 0 and q.max() <= 1
    # the objective (sum of pixels) goes down for every image, even with only 10 probes
    assert ((x - x0).flatten(1).sum(1) < -0.5).all()
    assert query_count(32) == 100 * 33 == REFERENCE.population * (32 + 1)


def test_nes_probes_under_norm_2_stay_in_the_l2_ball():
    """At eps 2 the L-inf box of radius eps is all of [0, 1]: only an L2 projection keeps the probes in the ball."""
    seen: list[torch.Tensor] = []

    def losses(x: torch.Tensor, step: int) -> torch.Tensor:
        seen.append(x.clone())
        return x.flatten(1).sum(1)

    x0 = 0.2 + 0.6 * torch.rand(4, 1, 12, 12, dtype=torch.float64)
    eps = 2.0
    settings = NESSettings(population=10)
    x = pgd_minimize(lambda x, s: losses(x, s).sum(), x0, eps=eps, alpha=0.5, steps=settings.iterations(3), norm=2.0,
                     gradient=nes_gradient(losses, x0, eps=eps, seed=0, index=torch.arange(4), settings=settings, norm=2.0))
    assert len(seen) == settings.population * settings.iterations(3)
    norms = torch.stack([(q - x0).flatten(1).norm(dim=1) for q in seen])
    assert norms.max() <= eps + 1e-9, norms.max()
    assert norms.max() > 0.5 * eps  # the probes do reach out (the test is not vacuous)
    assert all(q.min() >= 0 and q.max() <= 1 for q in seen)
    assert (x - x0).flatten(1).norm(dim=1).max() <= eps + 1e-9


def test_nes_attack_with_norm_2_queries_only_inside_the_l2_ball():
    model, data = toy_model("C"), toy_dataset()
    index = torch.arange(8)
    x0 = data.images(index)
    seen: list[torch.Tensor] = []
    forward = model.backbone.forward

    def spy(x):
        if x.shape[0] == 8:
            seen.append(x.detach().clone())
        return forward(x)

    model.backbone.forward = spy
    attack = build_attack(parse_spec("ES:eps=1.5:alpha=0.5:pgditer=2:nes=1:norm=2", registry=get_registry()), registry=get_registry())
    from robrank.attacks import Gallery

    model.backbone.forward = forward
    gallery = Gallery.compute(model, data)
    model.backbone.forward = spy
    attack(model, gallery, x0, data.labels[index], index, seed=0, self_slot=index)
    assert len(seen) >= REFERENCE.population * REFERENCE.iterations(2)
    norms = torch.stack([(q - x0).flatten(1).norm(dim=1) for q in seen])
    assert norms.max() <= 1.5 + 1e-5, norms.max()
    assert norms.max() > 0.75


def test_large_images_are_probed_at_low_resolution():
    assert probe_shape((3, 224, 224)) == (3, 32, 32)
    assert probe_shape((1, 28, 28)) == (1, 28, 28)
    x0 = torch.full((2, 3, 224, 224), 0.5)
    _, grad = nes_gradient(lambda x, s: x.flatten(1).sum(1), x0, eps=0.05, seed=0, index=torch.arange(2))(x0, 0)
    blocks = grad.unfold(2, 7, 7).unfold(3, 7, 7)  # [2, 3, 32, 32, 7, 7]: constant inside each 7x7 block
    assert torch.equal(blocks, blocks[..., :1, :1].expand_as(blocks))


def test_nes_spec_field():
    spec = parse_spec("ES:eps=0.3:nes=1", registry=get_registry())
    assert spec.params["nes"] == 1 and spec.text.endswith(":nes=1")
    assert parse_spec("ES:nes=0", registry=get_registry()).text == parse_spec("ES", registry=get_registry()).text  # off = the white-box spec
    with pytest.raises(SpecError, match="nes must be 0 or 1"):
        parse_spec("ES:nes=yes", registry=get_registry())
    with pytest.raises(SpecError, match="pgditer >= 2"):
        parse_spec("CA:pm=+:W=1:pgditer=1:nes=1", registry=get_registry())
    for search in ("opt=apgd", "opt=worst", "restarts=2"):  # refused when the spec is read, before any model loads
        with pytest.raises(SpecError, match="takes no opt=apgd/worst and no restarts"):
            parse_spec(f"ES:nes=1:{search}", registry=get_registry())
    from robrank.params import ParamError

    with pytest.raises(ParamError, match="no restarts"):  # the Python constructor checks the same
        get_registry().get("attacks", "ES").factory(nes=True, opt="apgd")


@pytest.mark.parametrize("spec", ["ES:eps=0.1:pgditer=3", "CA:pm=+:W=1:eps=0.1:pgditer=3"])
def test_nes_attack_gets_most_of_the_white_box_effect_and_reports_queries(spec):
    model, data = toy_model("C"), toy_dataset()
    nes = run_attack(model, data, f"{spec}:nes=1", indices=range(16), progress=False, registry=get_registry())
    # the white-box attack with NES's step schedule: pgditer + 1 sign steps of 3/255
    white = run_attack(model, data, spec.replace("pgditer=3", "pgditer=4:alpha=0.011764705882352941"), indices=range(16), progress=False, registry=get_registry())
    assert nes.adv["queries"] == query_count(3) == 400
    assert "queries" not in white.adv
    gain_nes = nes.orig["loss"] - nes.adv["loss"]
    gain_white = white.orig["loss"] - white.adv["loss"]
    assert 0.3 * gain_white < gain_nes <= gain_white


@pytest.mark.parametrize("semantics", ["reference", "fixed"])
@pytest.mark.parametrize("spec", ["ES", "CA:pm=-:W=2", "QA:pm=+:M=2", "GTT", "LTM"])
def test_transfer_with_the_target_as_surrogate_is_the_white_box_attack(spec, semantics):
    data = toy_dataset()
    target = toy_model("C", seed=0)
    twin = toy_model("C", seed=0)  # same weights, another object: nothing may be shared by accident
    full = f"{spec}:eps=0.1:alpha=0.02:pgditer=4"
    white = run_attack(target, data, full, indices=range(24), batch_size=10, semantics=semantics, progress=False, registry=get_registry())
    transfer = run_attack(target, data, full, indices=range(24), batch_size=10, semantics=semantics, progress=False, surrogate=twin, registry=get_registry())
    assert transfer.orig == white.orig
    assert transfer.adv == white.adv


def test_transfer_from_another_model_is_scored_on_the_target():
    data = toy_dataset()
    target, other = toy_model("C", seed=0), toy_model("N", seed=5)
    full = "ES:eps=0.1:alpha=0.02:pgditer=4"
    white = run_attack(target, data, full, indices=range(24), progress=False, registry=get_registry())
    transfer = run_attack(target, data, full, indices=range(24), progress=False, surrogate=other, registry=get_registry())
    on_surrogate = run_attack(other, data, full, indices=range(24), progress=False, registry=get_registry())
    assert transfer.orig == white.orig  # clean numbers are the target's
    assert transfer.adv != on_surrogate.adv
    # a surrogate's perturbation moves the target less than the target's own gradient does
    assert 0 < transfer.adv["embshift"] < white.adv["embshift"]


def test_attack_cli_surrogate(tiny_run, robrank_cli, tmp_path):
    spec = "ES:eps=0.1:alpha=0.02:pgditer=2"
    base = ("attack", str(tiny_run), "-A", spec, "-m", "1", "-b", "16", "-D", "cpu", "--json")
    white = robrank_cli(*base)
    transfer = robrank_cli(*base, "--surrogate", str(tiny_run))
    assert white.exit_code == 0 and transfer.exit_code == 0, transfer.output
    w, t = json.loads(white.stdout), json.loads(transfer.stdout)
    assert t["adv"] == w["adv"] and t["surrogate"].endswith(".pt")
    missing = robrank_cli(*base, "--surrogate", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and "Traceback" not in missing.output
