"""robrank-myattack: the MI-FGSM update, MICA against CA, the profiles and the command.

``tiny_run``, ``register_plugin`` and ``robrank_cli`` are robrank's pytest fixtures
(``robrank.testing``, installed with robrank): a tiny trained digits model, a context that
registers this plugin for one test, and the CLI run in-process.
"""
from __future__ import annotations

import json

import pytest
import torch

import robrank_myattack
from robrank_myattack.attack import MICA, momentum_step
from robrank_myattack.profiles import mi28, mi224
from robrank_plugins.attacks.candidate import CandidateAttack

PGD = dict(eps=0.30196, alpha=0.011764)
PLUGIN = dict(distribution="robrank-myattack", version=robrank_myattack.__version__)


# ------------------------------------------------------------------------- the update rule


def test_momentum_step_by_hand():
    x = torch.zeros(2, 1, 1, 2)
    state: dict = {}
    g1 = torch.tensor([[1.0, -3.0], [2.0, 2.0]]).view(2, 1, 1, 2)
    x1 = momentum_step(x, g1, state, 0.1, decay=1.0)
    # v = g / ||g||_1: sample 0 -> [0.25, -0.75]; sample 1 -> [0.5, 0.5]
    assert torch.allclose(state["g"].view(2, 2), torch.tensor([[0.25, -0.75], [0.5, 0.5]]))
    assert torch.allclose(x1.view(2, 2), torch.tensor([[-0.1, 0.1], [-0.1, -0.1]]))
    # second gradient points the other way on sample 0's first pixel ...
    g2 = torch.tensor([[-2.0, 2.0], [-1.0, 3.0]]).view(2, 1, 1, 2)
    x2 = momentum_step(x1, g2, state, 0.1, decay=1.0)
    # v0 = [0.25, -0.75] + [-0.5, 0.5] = [-0.25, -0.25]; v1 = [0.5, 0.5] + [-0.25, 0.75] = [0.25, 1.25]
    assert torch.allclose(state["g"].view(2, 2), torch.tensor([[-0.25, -0.25], [0.25, 1.25]]))
    # ... so MI-FGSM moves pixel 1 of sample 0 *back* (+0.1) where sign-PGD would step -0.1 again
    assert torch.allclose(x2.view(2, 2), torch.tensor([[0.0, 0.2], [-0.2, -0.2]]))


def test_momentum_step_is_per_sample_and_scale_free():
    torch.manual_seed(0)
    g = torch.randn(3, 1, 4, 4)
    scaled = g * torch.tensor([1.0, 1e4, 1e-4]).view(3, 1, 1, 1)
    a, b = {}, {}
    momentum_step(torch.zeros_like(g), g, a, 0.1, 1.0)
    momentum_step(torch.zeros_like(g), scaled, b, 0.1, 1.0)
    assert torch.allclose(a["g"], b["g"], rtol=1e-5, atol=1e-9)
    assert torch.allclose(a["g"].abs().flatten(1).sum(1), torch.ones(3))


# ------------------------------------------------------------------------- MICA vs CA


@pytest.fixture(scope="module")
def batch(tiny_run):
    from robrank.plugin_api import Gallery, get_registry, load_run, load_split

    run = load_run(tiny_run, registry=get_registry())
    test = load_split(run.dataset, "test", registry=get_registry())
    gallery = Gallery.compute(run.model, test)
    index = torch.arange(0, 48)
    return run.model, gallery, test.images(index), test.labels[index], index


def _attack(cls, batch, **params):
    model, gallery, images, labels, index = batch
    return cls(pm=params.pop("pm", "+"), W=params.pop("W", 1), **{**PGD, **params})(model, gallery, images, labels, index)


@pytest.mark.parametrize("pm", ["+", "-"])
def test_mica_is_ca_for_one_step_or_zero_decay(batch, pm):
    fgsm_ca = _attack(CandidateAttack, batch, pm=pm, pgditer=1)
    fgsm_mica = _attack(MICA, batch, pm=pm, pgditer=1)
    assert torch.equal(fgsm_ca.adversarial, fgsm_mica.adversarial)
    ca = _attack(CandidateAttack, batch, pm=pm, pgditer=6)
    flat = _attack(MICA, batch, pm=pm, pgditer=6, mu=0.0)
    assert torch.equal(ca.adversarial, flat.adversarial)
    assert torch.equal(ca.adv["prank"], flat.adv["prank"])


def test_mica_takes_its_own_path_inside_the_budget(batch):
    images = batch[2]
    ca = _attack(CandidateAttack, batch, pgditer=12)
    mica = _attack(MICA, batch, pgditer=12)
    assert not torch.equal(ca.adversarial, mica.adversarial)
    delta = (mica.adversarial - images).abs().max()
    assert float(delta) <= PGD["eps"] + 1e-6
    assert float(mica.adversarial.min()) >= 0.0 and float(mica.adversarial.max()) <= 1.0
    # same selection, same clean summary: only the update rule differs
    assert torch.equal(ca.orig["prank"], mica.orig["prank"])
    # and it attacks: CA+ moves candidates up (prank falls from about 0.5)
    assert float(mica.adv["prank"].mean()) < float(mica.orig["prank"].mean()) - 10  # percent


# ------------------------------------------------------------------------- robrank integration


def test_registered_with_provenance(register_plugin):
    with register_plugin(robrank_myattack, **PLUGIN) as host:
        mica = host.registry.component("attacks", "MICA")
        assert mica.provider.distribution == "robrank-myattack"
        assert (mica.record.required, mica.record.signed) == (("pm", "W"), True)
        assert {p: host.registry.get("profiles", p).image_size for p in ("mi28", "mi224")} == {"mi28": 28, "mi224": 224}
        assert host.failures == []


def test_profiles_are_canonical_and_share_the_ers_budget(register_plugin):
    from robrank.plugin_api import get_registry, parse_spec
    from robrank_plugins.profiles.reference import rob28, rob224

    with register_plugin(robrank_myattack, **PLUGIN):
        for profile, ers in ((mi28, rob28), (mi224, rob224)):
            specs = profile()
            assert [parse_spec(s, registry=get_registry()).text for s in specs] == specs  # stored as written
            assert [s.split(":")[0] for s in specs] == ["MICA", "MICA", "CA", "CA"]
            assert set(specs[2:]) <= set(ers())  # the CA± rows are exactly the ERS profile's


def test_attack_command(register_plugin, robrank_cli, tiny_run):
    spec = "MICA:pm=+:W=1:eps=0.30196:alpha=0.011764:pgditer=8"
    with register_plugin(robrank_myattack, **PLUGIN):
        result = robrank_cli("attack", str(tiny_run), "-A", spec, "-m", "1", "-b", "32", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["spec"] == spec and payload["count"] == 32
    assert payload["adv"]["prank"] < payload["orig"]["prank"]


def test_swipe_and_report(register_plugin, robrank_cli, tiny_run, tmp_path):
    out = tmp_path / "mi28.json"
    with register_plugin(robrank_myattack, **PLUGIN):
        swiped = robrank_cli("swipe", str(tiny_run), "-p", "mi28", "-m", "1", "-b", "16", "--output", str(out), "--no-progress")
        assert swiped.exit_code == 0, swiped.output
        report = robrank_cli("report", str(out))
    payload = json.loads(out.read_text())
    assert payload["profile"] == "mi28" and [a["type"] for a in payload["attacks"]] == ["MICA", "MICA", "CA", "CA"]
    assert report.exit_code == 0, report.output
    assert "MICA:pm=+:W=1:eps=0.30196" in report.output
    # MICA inherits CA's display: its prank is shown as CA's is, a percentile out of 100
    mica = [line.split() for line in report.output.splitlines() if line.startswith("MICA:pm=+")]
    ca = [line.split() for line in report.output.splitlines() if line.startswith("CA:pm=+")]
    assert mica[0][1:2] == ca[0][1:2] == ["PCTL"] and mica[0][-2:] == ca[0][-2:] == ["/", "100.0"]


def test_info_command(register_plugin, robrank_cli):
    with register_plugin(robrank_myattack, **PLUGIN):
        info = robrank_cli("myattack-info", "MICA:pm=-:W=2:eps=0.1:alpha=0.01:pgditer=4", "--profiles")
        wrong = robrank_cli("myattack-info", "ES:eps=0.1")
    assert info.exit_code == 0, info.output
    lines = info.stdout.splitlines()
    assert "spec: MICA:pm=-:W=2:eps=0.1:alpha=0.01:pgditer=4" in lines
    assert "reach: at most 0.04 per pixel" in lines  # 4 steps of 0.01 inside eps 0.1
    assert any(line.startswith("update: g <- 1 * g + grad / ||grad||_1") for line in lines)
    assert "profile mi28:" in lines
    assert wrong.exit_code == 2 and "explains MICA and CA specs" in wrong.output
