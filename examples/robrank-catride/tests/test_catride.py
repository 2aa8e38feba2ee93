"""robrank-catride: each formula against a hand computation, the defense's wiring, and the plugin end to end.

The fixtures ``register_plugin``, ``robrank_cli`` and ``tiny_run_factory`` come from robrank's
pytest plugin (``robrank.testing``), installed with robrank.
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

robrank_catride = pytest.importorskip("robrank_catride", reason="pip install -e examples/robrank-catride")
from robrank.plugin_api import ConfigError, TrainingProgress  # noqa: E402
from robrank_catride import CATRIDE, GraduallyHardMiner  # noqa: E402
from robrank_catride.defense import signed_descent  # noqa: E402
from robrank_catride.objectives import (  # noqa: E402
    anp_loss,
    cap_loss,
    epoch_fraction,
    extra_triplet_term,
    inner_step_size,
    miner_margin,
    smaller_half_mean,
    soft_weighted_mean,
    step_fraction,
)

T = torch.tensor


def hand_mean(d: list[float], lam: float) -> float:
    top = max(d)
    w = [math.exp(lam * (x - top)) for x in d]
    return sum(wi * x for wi, x in zip(w, d)) / sum(w)


# ------------------------------------------------------------------------------- the formulas


def test_soft_weighted_mean_by_hand():
    d = [0.1, 0.5, 0.3]
    # lam 2: w = exp(2 * (d - 0.5)) = exp(-0.8), 1, exp(-0.4)
    w = [math.exp(-0.8), 1.0, math.exp(-0.4)]
    expected = (0.1 * w[0] + 0.5 * w[1] + 0.3 * w[2]) / sum(w)
    assert soft_weighted_mean(T(d), 2.0).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.35196, abs=1e-5)  # (0.0449 + 0.5 + 0.2011) / 2.1196
    assert soft_weighted_mean(T(d), 0.0).item() == pytest.approx(0.3)  # λ = 0: the plain mean
    assert soft_weighted_mean(T(d), 100.0).item() == pytest.approx(0.5, abs=1e-6)  # large λ: the maximum


def test_soft_weighted_mean_keeps_the_weights_in_the_graph():
    d = T([0.2, 0.6], requires_grad=True)
    soft_weighted_mean(d, 3.0).backward()
    # M = (w1 d1 + w2 d2)/(w1 + w2), w_i = exp(3 d_i) up to a constant; dM/dd_i = w_i/W (1 + 3 (d_i - M))
    w = [math.exp(3 * 0.2), math.exp(3 * 0.6)]
    m = (w[0] * 0.2 + w[1] * 0.6) / sum(w)
    expected = [w[i] / sum(w) * (1 + 3 * ([0.2, 0.6][i] - m)) for i in range(2)]
    assert d.grad.tolist() == pytest.approx(expected, rel=1e-5)


def test_cap_loss_by_hand_and_its_hinge():
    d_ap, d_an, lam = [0.3, 0.6], [0.9, 0.4], 5.0
    expected = max(hand_mean(d_an, lam) - hand_mean(d_ap, lam), 0.0)
    assert expected > 0
    assert cap_loss(T(d_ap), T(d_an), lam).item() == pytest.approx(expected, rel=1e-6)
    # once the weighted positives lie beyond the negatives (c >= 0) CAP has nothing left to do
    assert cap_loss(T([0.9, 0.8]), T([0.3, 0.2]), lam).item() == 0.0


def test_anp_loss_by_hand_with_a_constant_damping():
    d_ap, d_an, shift, lam = [0.5, 0.7, 0.2, 0.4], [0.3, 0.9, 0.6, 0.1], [0.05, 0.0, 0.1, 0.05], 2.0
    c = hand_mean(d_ap, lam) - hand_mean(d_an, lam)
    g = math.exp(-max(-c, 0.0))
    h_an = (0.1 + 0.3) / 2  # the 4 // 2 = 2 smallest d_an
    d_aa = sum(shift) / 4
    expected = max(c, 0.0) + g * max(h_an - d_aa, 0.0)
    assert anp_loss(T(d_ap), T(d_an), T(shift), lam).item() == pytest.approx(expected, rel=1e-6)

    # g is a constant: d loss / d shift_i = -g / B only (no gradient through g, and c > 0 here? check both)
    shift_t = T(shift, requires_grad=True)
    d_ap_t = T(d_ap, requires_grad=True)
    anp_loss(d_ap_t, T(d_an), shift_t, lam).backward()
    assert shift_t.grad.tolist() == pytest.approx([-g / 4] * 4, rel=1e-6)
    if c < 0:  # the first hinge is off, and g carries no gradient: d_ap gets none at all
        assert d_ap_t.grad.abs().max().item() == 0.0


def test_anp_first_term_pulls_back_once_the_gap_is_positive():
    d_ap, d_an, shift = [0.9, 0.8], [0.2, 0.3], [0.5, 0.5]  # c > 0, anchors already far from home
    c = hand_mean(d_ap, 4.0) - hand_mean(d_an, 4.0)
    assert anp_loss(T(d_ap), T(d_an), T(shift), 4.0).item() == pytest.approx(c, rel=1e-6)


def test_extra_term_and_smaller_half():
    d_ap, d_an = T([0.5, 0.1, 0.3, 0.7]), T([0.2, 0.25, 0.9, 0.8])
    assert smaller_half_mean(d_ap).item() == pytest.approx(0.2)
    assert smaller_half_mean(T([0.4])).item() == pytest.approx(0.4)  # B = 1: a decision (the code divides by 0)
    # 0.5 * relu(0.2 - 0.225 + 0.04)
    assert extra_triplet_term(d_ap, d_an).item() == pytest.approx(0.5 * 0.015, rel=1e-5)
    assert extra_triplet_term(T([0.9, 0.9]), T([0.1, 0.1])).item() == pytest.approx(0.5 * 0.84)
    assert extra_triplet_term(T([0.1, 0.1]), T([0.9, 0.9])).item() == 0.0


def test_step_and_margin_schedules_by_hand():
    assert epoch_fraction(0, 8) == 0.0 and epoch_fraction(6, 8) == 0.75
    assert step_fraction(50, 200) == 0.25 and step_fraction(300, 200) == 1.0
    assert inner_step_size(1 / 255, 0.0) == 0.0  # epoch 0 trains on clean images
    assert inner_step_size(1 / 255, 0.5) == pytest.approx(0.5 / 255)
    assert inner_step_size(1 / 255, 0.5, decay=False) == pytest.approx(1 / 255)
    assert miner_margin(0.0) == pytest.approx(0.2)
    assert miner_margin(0.5) == pytest.approx(0.2 * 0.75**2)
    assert miner_margin(1.0) == pytest.approx(0.05)


# ------------------------------------------------------------------------------------ the miner


def test_miner_margin_shrinks_with_progress():
    # anchors 0 and 2 (labels 0 and 1) on the unit circle; partners at 1 and 3
    def unit(deg: float) -> list[float]:
        return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]

    x = T([unit(0), unit(20), unit(90), unit(95), unit(40), unit(150)])
    labels = T([0, 0, 1, 1, 0, 1])
    # anchor 0: d_ap = chord(20°) = 0.347; items of label 1: 90° -> 1.414, 95° -> 1.475, 150° -> 1.932
    # none within d_ap + 0.2 -> fallback: any of them. Put one in range instead:
    x[5] = T(unit(30))  # label 1 at 30°: chord 0.518, 0.347 < 0.518 < 0.347 + 0.2 (semihard at margin 0.2)
    miner = GraduallyHardMiner("N")
    draws = {int(miner(x, labels)[2][0]) for _ in range(20)}
    assert draws == {5}
    miner.progress = 1.0  # margin 0.05: 0.518 - 0.347 > 0.05, no longer semihard -> any different-label item
    assert miner.current_margin == pytest.approx(0.05)
    draws = {int(miner(x, labels)[2][0]) for _ in range(60)}
    assert draws == {2, 3, 5}
    a, p, _ = miner(x, labels)
    assert a.tolist() == [0, 2, 4] and p.tolist() == [1, 3, 5]


# ------------------------------------------------------------------------- the inner descent


def test_signed_descent_steps_projects_and_stops():
    x0 = T([[0.5, 0.95]])
    target = T([[1.0, 0.0]])

    def objective(x: torch.Tensor) -> torch.Tensor:  # squared distance to target
        return (x - target).pow(2).sum()

    history: list[float] = []
    x, grads = signed_descent(objective, x0, eps=0.1, step=0.04, iterations=3, stop_below=1e-5, history=history)
    # sign steps: +0.04 / -0.04 each, projected on [x0 - 0.1, x0 + 0.1]: 0.5 -> 0.6 (capped), 0.95 -> 0.85 (capped)
    assert x[0].tolist() == pytest.approx([0.6, 0.85])
    assert grads == 3 and len(history) == 3
    assert history[0] == pytest.approx(0.25 + 0.9025)
    # the clamp to [0, 1]: a step past 1 stops at 1
    x, _ = signed_descent(lambda v: -v.sum(), T([[0.98]]), eps=0.1, step=0.05, iterations=2, stop_below=-1e9)
    assert x.item() == pytest.approx(1.0)
    # the stop rule: a loss already below 1e-5 costs no gradient and leaves x0 unchanged
    x, grads = signed_descent(lambda v: 0.0 * v.sum() + 5e-6, x0, eps=0.1, step=0.04, iterations=16, stop_below=1e-5)
    assert grads == 0 and torch.equal(x, x0)
    # it stops in the middle once the loss falls under the threshold (checked before each step)
    x, grads = signed_descent(lambda v: torch.relu(0.1 - v.sum()), T([[0.0]]), eps=1.0, step=0.04, iterations=16, stop_below=1e-5)
    assert grads == 3 and x.item() == pytest.approx(0.12)
    # a step of 0 (the first epoch under the decay) runs nothing
    x, grads = signed_descent(objective, x0, eps=0.1, step=0.0, iterations=16, stop_below=1e-5)
    assert grads == 0 and torch.equal(x, x0)


# ---------------------------------------------------------------------------- the defense


class Linear(nn.Module):
    """A fixed linear embedding of 2x2 images, so every distance is computable."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(4, 3)
        self.metric = "N"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.reshape(x.shape[0], -1))


class Triplet(nn.Module):
    """ptripletN's kernel: mean ReLU(d_ap - d_an + 0.2) on normalised rows."""

    miner = None

    def raw(self, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        return torch.relu((a - p).norm(dim=1) - (a - n).norm(dim=1) + 0.2).mean()


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(8, 1, 2, 2, generator=gen), T([0, 0, 1, 1, 2, 2, 3, 3])


def normalised(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(model(x), dim=1)


def test_phases_alternate_and_each_moves_only_its_images():
    model, criterion = Linear(), Triplet()
    images, labels = batch()
    defense = CATRIDE(eps=0.1, alpha=0.02, pgditer=4, lam=3.0, schedule="step", extra_term=False)
    defense.schedule(TrainingProgress(epoch=0, epochs=1, step=10, total_steps=10))  # r = 1: full step α
    assert defense.phase == "cap" and defense.step_size == pytest.approx(0.02)
    benign = normalised(model, images).detach()
    anc, pos, neg = torch.arange(0, 8, 2), torch.arange(1, 8, 2), T([2, 4, 6, 0])

    adv_p, adv_n, grads = defense.perturb_candidates(model, benign[anc], images[pos], images[neg])
    d = lambda a, b: (a - b).norm(dim=1)  # noqa: E731
    hand = cap_loss(d(benign[anc], benign[pos]), d(benign[anc], benign[neg]), 3.0).item()
    assert defense.inner_history[0] == pytest.approx(hand, rel=1e-6)  # the CAP loss, computed by hand
    assert (adv_p - images[pos]).abs().max() <= 0.1 + 1e-6 and grads == len(defense.inner_history) or grads < 4
    after = cap_loss(d(benign[anc], normalised(model, adv_p)), d(benign[anc], normalised(model, adv_n)), 3.0).item()
    assert after < hand or after < 1e-5

    adv_a, _ = defense.perturb_anchors(model, images[anc], benign[anc], benign[pos], benign[neg])
    hand = anp_loss(d(benign[anc], benign[pos]), d(benign[anc], benign[neg]), torch.zeros(4), 3.0).item()
    assert defense.inner_history[0] == pytest.approx(hand, rel=1e-5)  # the ANP loss at a' = a
    assert (adv_a - images[anc]).abs().max() <= 0.1 + 1e-6

    # one step of training: CAP first (anchors benign), then ANP
    torch.manual_seed(0)
    defense.loss(model, criterion, images, labels)
    assert defense.logs["cap"] == 1.0 and defense.phase == "anp"
    defense.loss(model, criterion, images, labels)
    assert defense.logs["cap"] == 0.0 and defense.phase == "cap"
    assert defense.state_dict()["steps_done"] == 12


def test_outer_loss_adds_the_extra_term_when_asked():
    model, criterion = Linear(), Triplet()
    images, labels = batch(3)
    losses = {}
    for extra in (False, True):
        defense = CATRIDE(pgditer=2, extra_term=extra)
        defense.schedule(TrainingProgress(epoch=0, epochs=8, step=0, total_steps=100))  # epoch 0: no perturbation
        torch.manual_seed(0)
        losses[extra] = defense.loss(model, criterion, images, labels).item()
        assert defense.logs["inner_grads"] == 0.0
    benign = normalised(model, images).detach()
    torch.manual_seed(0)
    anc, pos, neg = GraduallyHardMiner("N")(benign, labels)
    a, p, n = benign[anc], benign[pos], benign[neg]
    d_ap, d_an = (a - p).norm(dim=1), (a - n).norm(dim=1)
    assert losses[False] == pytest.approx(criterion.raw(a, p, n).item(), rel=1e-5)
    assert losses[True] == pytest.approx(losses[False] + extra_triplet_term(d_ap, d_an).item(), rel=1e-5)


def test_schedule_follows_epochs_or_steps_and_survives_a_resume():
    defense = CATRIDE(alpha=0.04)
    defense.schedule(TrainingProgress(epoch=3, epochs=4, step=7, total_steps=40))
    assert defense.step_size == pytest.approx(0.03) and defense.phase == "anp"
    step = CATRIDE(alpha=0.04, schedule="step")
    step.schedule(TrainingProgress(epoch=0, epochs=4, step=10, total_steps=40))
    assert step.step_size == pytest.approx(0.01)
    flat = CATRIDE(alpha=0.04, step_decay=False)
    flat.schedule(TrainingProgress(epoch=0, epochs=4, step=0, total_steps=40))
    assert flat.step_size == pytest.approx(0.04)
    again = CATRIDE(alpha=0.04)
    again.load_state_dict(defense.state_dict())
    assert again.step_size == pytest.approx(0.03) and again.phase == "anp"


def test_options_are_typed_and_range_checked():
    defense = CATRIDE(lam="9.5", step_decay="0", extra_term=False)  # -o values arrive as text
    assert defense.options["lam"] == 9.5 and defense.options["step_decay"] is False and defense.options["extra_term"] is False
    assert defense.pgditer == 16  # the released code's iterations
    for bad, words in (({"lam": -1.0}, "lam"), ({"lam": "x"}, "lam"), ({"schedule": "cosine"}, "schedule"),
                       ({"extra_term": "maybe"}, "extra_term"), ({"pgditer": 0}, "pgditer"), ({"lamda": 2.0}, "lamda")):
        with pytest.raises(ConfigError, match=words):
            CATRIDE(**bad)


# ---------------------------------------------------------------------------- as a plugin


def test_listed_with_provenance_and_trains_through_the_cli(register_plugin, robrank_cli, tmp_path):
    with register_plugin(robrank_catride, distribution="robrank-catride", version=robrank_catride.__version__):
        listed = json.loads(robrank_cli("list", "--json").stdout)
        by_name = {(kind, c["name"]): c for kind, comps in listed["components"].items() for c in comps}
        assert by_name[("defenses", "catride")]["provider"]["distribution"] == "robrank-catride"
        assert by_name[("miners", "ghard")]["provider"]["distribution"] == "robrank-catride"

        bad = robrank_cli("train", "-C", "digits:lenet:ptripletN", "--defense", "catride", "-o", "lam=-3", "--max-steps", "1",
                          "--run-dir", str(tmp_path / "bad"))
        assert bad.exit_code == 2 and "lam" in bad.output and "Traceback" not in bad.output

        # the -C suffix "ct" names the defense; a few steps through the real engine, progress ramping per step
        run = tmp_path / "run"
        done = robrank_cli("train", "-C", "digits:lenetct:ptripletN", "--pgditer", "2", "-o", "schedule=step",
                           "--max-steps", "3", "-b", "16", "--embedding-dim", "16", "--device", "cpu",
                           "--run-dir", str(run), "--no-progress")
        assert done.exit_code == 0, done
        config = json.loads((run / "config.json").read_text())["config"]
        assert config["defense"] == "catride" and config["defense_options"]["schedule"] == "step"
        assert (run / "checkpoints" / "last.pt").is_file()


def test_found_through_its_entry_point_with_its_options():
    """Installed (``pip install -e examples/robrank-catride``), ``robrank list`` finds it with no registration by hand."""
    import os
    import subprocess
    import sys
    from importlib import metadata

    try:
        metadata.distribution("robrank-catride")
    except metadata.PackageNotFoundError:
        pytest.skip("robrank-catride is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("ROBRANK_LOAD_PLUGINS", "ROBRANK_STRICT_PLUGINS")}
    out = subprocess.run([sys.executable, "-m", "robrank", "list", "defenses"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("catride "))
    block = "\n".join(lines[start : start + 12])
    assert f"(robrank-catride {robrank_catride.__version__})" in lines[start]
    for option in ("lam", "step_decay", "schedule", "extra_term", "pgditer"):
        assert option in block
