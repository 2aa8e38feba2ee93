"""Loss families: hand-computed values on tiny tensors, gradients, name resolution, registry."""
from __future__ import annotations

import json
import math

import pytest
import torch

from robrank.errors import ConfigError, UnknownNameError
from robrank.losses import LossChoice, build_criterion, resolve_loss
from robrank.plugins import get_registry, load_plugins, use_host


@pytest.fixture(scope="module")
def host():
    host = load_plugins(env={"ROBRANK_LOAD_PLUGINS": ""})
    with use_host(host):
        yield host


def criterion(name: str, **params):
    return build_criterion(resolve_loss(name, registry=get_registry()), registry=get_registry(), **params)


class FixedMiner:
    """Stand-in miner returning chosen triplets, so a forward pass is deterministic."""

    def __init__(self, a, p, n):
        self.idx = tuple(torch.tensor(v, dtype=torch.long) for v in (a, p, n))

    def __call__(self, emb, labels):
        return self.idx


def unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


T = torch.tensor
LABELS4 = T([0, 0, 1, 1])


# ---------------------------------------------------------------- triplet


def test_triplet_cosine_hand_values(host):
    crit = criterion("ptripletC")
    a = T([[1.0, 0.0], [0.0, 1.0]])
    p = T([[0.6, 0.8], [0.0, 1.0]])
    n = T([[0.8, 0.6], [1.0, 0.0]])
    # d_C(a,p) = 0.4, d_C(a,n) = 0.2 -> 0.4; second triplet: 0 - 1 + 0.2 < 0 -> 0
    assert crit.raw(a, p, n).item() == pytest.approx(0.2, abs=1e-6)
    assert crit.margin == 0.2
    assert crit.raw(a, p, n, margin=0.0).item() == pytest.approx(0.1, abs=1e-6)


def test_triplet_euclidean_hand_values(host):
    crit = criterion("ptripletE")
    assert crit.margin == 1.0
    a = T([[0.0, 0.0], [0.0, 0.0]])
    p = T([[3.0, 4.0], [1.0, 0.0]])
    n = T([[6.0, 8.0], [0.0, 1.0]])
    # relu(5 - 10 + 1) = 0 ; relu(1 - 1 + 1) = 1
    assert crit.raw(a, p, n).item() == pytest.approx(0.5, abs=1e-5)


def test_triplet_normalised_forward_normalises_raw_embeddings(host):
    crit = criterion("ptripletN")
    assert crit.margin == 0.2
    crit.miner = FixedMiner([0], [1], [2])
    emb = T([[2.0, 0.0], [0.0, 5.0], [3.0, 3.0], [7.0, 1.0]])  # unit: 0°, 90°, 45°
    expected = math.sqrt(2) - math.sqrt(2 - math.sqrt(2)) + 0.2
    assert crit(emb, LABELS4).item() == pytest.approx(expected, abs=1e-5)
    # scaling the raw embeddings changes nothing for N
    assert crit(emb * 10, LABELS4).item() == pytest.approx(expected, abs=1e-5)


# ---------------------------------------------------------------- contrastive


def test_contrastive_euclidean_mean_over_active_negatives(host):
    crit = criterion("pcontrastE")
    a = T([[0.0, 0.0], [0.0, 0.0]])
    p = T([[3.0, 4.0], [1.0, 0.0]])
    n = T([[0.5, 0.0], [0.0, 2.0]])
    # mean d(a,p) = (5 + 1) / 2 = 3; active negatives: only 1 - 0.5 = 0.5 (1 - 2 < 0)
    assert crit.raw(a, p, n).item() == pytest.approx(3.5, abs=1e-5)
    # no active negative at all: just the positive term
    assert crit.raw(a, p, n * 10).item() == pytest.approx(3.0, abs=1e-5)


def test_contrastive_normalised_forward(host):
    crit = criterion("pcontrastN")
    crit.miner = FixedMiner([0], [1], [2])
    emb = T([[2.0, 0.0], [0.0, 5.0], [3.0, 3.0], [7.0, 1.0]])
    expected = math.sqrt(2) + (1.0 - math.sqrt(2 - math.sqrt(2)))
    assert crit(emb, LABELS4).item() == pytest.approx(expected, abs=1e-5)


def test_contrastive_cosine_reproduces_zero_negative_term_quirk(host):
    crit = criterion("pcontrastC")
    a = T([[1.0, 0.0]])
    p = T([[0.0, 1.0]])
    n = T([[1.0, 0.0]])  # the negative sits on the anchor: still no penalty at margin 1.0
    assert crit.raw(a, p, n).item() == pytest.approx(1.0, abs=1e-6)
    # with a smaller margin the negative term appears: max(0, cos - 0.5) = 0.5
    assert crit.raw(a, p, n, margin=0.5).item() == pytest.approx(1.5, abs=1e-6)
    fixed = build_criterion(resolve_loss("pcontrastC", registry=get_registry()), margin=0.5, registry=get_registry())
    assert fixed.raw(a, p, n).item() == pytest.approx(1.5, abs=1e-6)


# ---------------------------------------------------------------- margin


def test_margin_loss_hand_values_and_beta(host):
    crit = criterion("pmarginE")
    assert crit.beta.item() == pytest.approx(0.6)
    assert crit.margin == 0.2
    a = T([[0.0, 0.0], [10.0, 0.0]])
    p = T([[0.3, 0.0], [10.9, 0.0]])
    n = T([[0.0, 0.5], [10.0, 1.5]])
    # pos: relu(0.3-0.6+0.2)=0, relu(0.9-0.6+0.2)=0.5 -> mean over active 0.5
    # neg: relu(0.6-0.5+0.2)=0.3, relu(0.6-1.5+0.2)=0 -> 0.3
    loss = crit.raw(a, p, n)
    assert loss.item() == pytest.approx(0.8, abs=1e-5)
    loss.backward()
    # d/dβ: -1 (the active positive) + 1 (the active negative)
    assert crit.beta.grad.item() == pytest.approx(0.0, abs=1e-6)
    assert [p for p in crit.parameters()] == [crit.beta]
    opt = crit.make_optimizer()
    assert isinstance(opt, torch.optim.SGD)
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_losses_without_parameters_have_no_optimizer(host):
    assert criterion("ptripletN").make_optimizer() is None


# ---------------------------------------------------------------- multi-similarity


def test_multisim_hand_values(host):
    crit = criterion("pmsC")
    emb = T([[2.0, 0.0], [0.6, 0.8], [0.0, 3.0], [-0.6, 0.8]])
    # anchor 0: s = 1 (itself), 0.6 | negatives 0, -0.6
    l0 = 0.5 * math.log(1 + math.exp(-1.0) + math.exp(-0.2)) + math.log(1 + math.exp(-20) + math.exp(-44)) / 40
    # anchor 2: s = 1, 0.8 | negatives 0, 0.8
    l2 = 0.5 * math.log(1 + math.exp(-1.0) + math.exp(-0.6)) + math.log(1 + math.exp(-20) + math.exp(12)) / 40
    assert crit(emb, LABELS4).item() == pytest.approx((l0 + l2) / 2, abs=1e-5)
    assert criterion("pmsN")(emb, LABELS4).item() == pytest.approx((l0 + l2) / 2, abs=1e-5)


# ---------------------------------------------------------------- lifted / npair


def test_generalised_lifted_hand_values(host):
    crit = criterion("pgliftE")
    emb = T([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    # anchor 0: relu(1 + log(e^-2 + e^-3)) = 0 ; anchor 2: relu(5 + log(e^-2 + e^-1))
    l0 = max(0.0, 1 + math.log(math.exp(-2) + math.exp(-3)))
    l2 = max(0.0, 5 + math.log(math.exp(-2) + math.exp(-1)))
    assert l0 == 0.0
    expected = (l0 + l2) / 2 + 5e-3 * (0 + 1 + 3 + 4) / 4
    assert crit(emb, LABELS4).item() == pytest.approx(expected, abs=1e-4)


def test_npair_hand_values(host):
    crit = criterion("pnpairE")
    emb = T([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [-1.0, 1.0]])
    l0 = math.log(1 + math.exp(-2) + math.exp(-3))
    l2 = math.log(1 + 2 * math.exp(-1))
    expected = (l0 + l2) / 2 + 5e-3 * (1 + 2 + 3 + math.sqrt(2)) / 4
    assert crit(emb, LABELS4).item() == pytest.approx(expected, abs=1e-5)


# ---------------------------------------------------------------- quadruplet


def test_quadruplet_raw_hand_values(host):
    crit = criterion("pquadE")
    assert (crit.margin, crit.margin2) == (1.0, 0.5)
    a, p, n, n2 = T([[0.0, 0.0]]), T([[1.0, 0.0]]), T([[0.0, 3.0]]), T([[0.0, 3.2]])
    # triplet relu(1 - 3 + 1) = 0 ; quadruplet relu(1 - 0.2 + 0.5) = 1.3
    assert crit.raw(a, p, n, n2=n2).item() == pytest.approx(1.3, abs=1e-5)
    assert crit.raw(a, p, n).item() == pytest.approx(0.0, abs=1e-6)
    assert criterion("pquadN").margin2 == 0.1


def test_quadruplet_second_negative_has_another_label(host):
    crit = criterion("pquadE")
    crit.miner = FixedMiner([0], [1], [2])
    emb = T([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0], [0.0, 3.2], [0.0, 4.5], [0.0, 5.5]])
    labels = T([0, 0, 1, 1, 2, 2])
    a, p, n = emb[[0]], emb[[1]], emb[[2]]
    allowed = {round(crit.raw(a, p, n, n2=emb[[j]]).item(), 5) for j in (0, 1, 4, 5)}
    forbidden = round(crit.raw(a, p, n, n2=emb[[3]]).item(), 5)
    # triplet 2 + quadruplet relu(4 - d(n, n2) + 0.5): n2 in {0, 1, 4, 5} -> 1.5, 0, 3, 2
    assert allowed == {3.5, 2.0, 5.0, 4.0} and forbidden == pytest.approx(6.3)
    seen = {round(crit(emb, labels).item(), 5) for _ in range(30)}
    assert seen <= allowed and len(seen) > 1


# ---------------------------------------------------------------- SNR / InfoNCE


def test_snr_hand_values(host):
    crit = criterion("psnrE")
    a = T([[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]])
    p = T([[1.0, 2.0, 4.0], [3.0, 0.0, 0.0]])
    n = T([[3.0, 2.0, 1.0], [0.0, 1.0, 3.0]])
    # triplet 1: pos 1/3, neg 4 -> inactive ; triplet 2: pos 9/3 = 3, neg (1/3)/3 -> 3 - 1/9 + 0.2
    expected = (3 - 1 / 9 + 0.2) + 0.005 * (6 + 3) / 2
    assert crit.raw(a, p, n).item() == pytest.approx(expected, abs=1e-5)
    # nothing active: only the regulariser (the reference would give NaN)
    assert crit.raw(a[:1], p[:1], n[:1]).item() == pytest.approx(0.005 * 6, abs=1e-6)


def test_infonce_hand_values(host):
    crit = criterion("piceC")
    emb = T([[3.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 1.0]])
    # logits [[1, 0], [0, 1]]: each CE term is log(1 + e^-1)
    assert crit(emb, LABELS4).item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)


# ---------------------------------------------------------------- all losses


ALL_NAMES = [
    "ptripletC", "ptripletE", "ptripletN", "pmtripletN", "pstripletC", "phtripletE", "pdtripletN",
    "pDtripletN", "pcontrastC", "pcontrastE", "pcontrastN", "pmarginN", "pmarginC", "pmsC", "pmsN",
    "pgliftE", "pnpairE", "pquadC", "pquadN", "psnrN", "psnrC", "piceC",
]


@pytest.mark.parametrize("name", ALL_NAMES)
def test_gradients_are_finite(host, name):
    torch.manual_seed(0)
    crit = criterion(name)
    emb = torch.randn(16, 8)
    emb[5] = emb[4]  # a duplicated pair: zero distances must not give NaN gradients
    emb.requires_grad_(True)
    labels = torch.arange(8).repeat_interleave(2) % 3
    loss = crit(emb, labels)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(emb.grad).all()
    assert emb.grad.abs().sum() > 0
    assert crit.metric == name[-1]


@pytest.mark.parametrize("name", ["ptripletN", "pcontrastE", "pmarginC", "pquadN", "psnrN"])
def test_triplet_style_losses_expose_raw_and_miner(host, name):
    crit = criterion(name)
    assert callable(crit.raw) and callable(crit.miner)
    assert resolve_loss(name, registry=get_registry()).record.has_raw


def test_odd_batches_are_rejected(host):
    with pytest.raises(ConfigError, match="SPC-2"):
        criterion("ptripletN")(torch.randn(5, 4), torch.zeros(5, dtype=torch.long))


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name, family, metric, miner",
    [
        ("ptripletN", "triplet", "N", "random"),
        ("pmtripletN", "triplet", "N", "semihard"),
        ("pstripletC", "triplet", "C", "softhard"),
        ("phtripletE", "triplet", "E", "hardest"),
        ("pdtripletN", "triplet", "N", "distance"),
        ("pDtripletN", "triplet", "N", "distance-switch"),
        ("pgliftE", "glift", "E", ""),
        ("pcontrastN", "contrastive", "N", "random"),
        ("pDcontrastN", "contrastive", "N", "distance-switch"),
        ("pmarginN", "margin", "N", "random"),
        ("pdmarginN", "margin", "N", "distance"),
        ("pmsC", "multisim", "C", ""),
        ("pnpairE", "npair", "E", ""),
        ("pquadN", "quadruplet", "N", "random"),
        ("pdquadN", "quadruplet", "N", "distance"),
        ("psnrN", "snr", "N", "random"),
        ("piceC", "infonce", "C", ""),
    ],
)
def test_reference_names_resolve(host, name, family, metric, miner):
    choice = resolve_loss(name, registry=get_registry())
    assert isinstance(choice, LossChoice)
    assert (choice.family, choice.metric, choice.miner, choice.reference_name) == (family, metric, miner, name)
    assert host.registry.get("losses", name) is choice.record


def test_resolution_by_parts(host):
    choice = resolve_loss("triplet", metric="N", miner="semihard", registry=get_registry())
    assert choice.reference_name == "pmtripletN" and choice.miner == "semihard"
    assert resolve_loss("contrastive", metric="E", registry=get_registry()).reference_name == "pcontrastE"
    assert resolve_loss("triplet", metric="N", miner="D", registry=get_registry()).miner == "distance-switch"
    assert resolve_loss("ptripletN", miner="softhard", registry=get_registry()).reference_name == "pstripletN"
    assert resolve_loss("glift", registry=get_registry()).metric == "E"  # its only metric
    assert resolve_loss("ms", metric="N", registry=get_registry()).reference_name == "pmsN"


@pytest.mark.parametrize(
    "name, kwargs, error, fragment",
    [
        ("pfooN", {}, UnknownNameError, "registered: ce, contrastive"),
        ("pxtripletN", {}, UnknownNameError, "triplet"),
        ("ptripletX", {}, UnknownNameError, "unknown loss"),
        ("pgliftN", {}, ConfigError, "supported: E"),
        ("pmsE", {}, ConfigError, "supported: C, N"),
        ("piceN", {}, ConfigError, "supported: C"),
        ("pmgliftE", {}, ConfigError, "no miner"),
        ("triplet", {}, ConfigError, "needs a metric"),
        ("triplet", {"metric": "N", "miner": "nosuch"}, UnknownNameError, "unknown miner"),
        ("npair", {"metric": "E", "miner": "random"}, ConfigError, "no miner"),
        ("ptripletN", {"metric": "C"}, ConfigError, "already fixes metric N"),
        ("pmtripletN", {"miner": "hardest"}, ConfigError, "already names miner"),
    ],
)
def test_bad_names(host, name, kwargs, error, fragment):
    with pytest.raises(error, match=fragment) as info:
        resolve_loss(name, registry=get_registry(), **kwargs)
    assert "\n" not in str(info.value)


def test_registry_lists_losses_and_reference_aliases(host, monkeypatch):
    monkeypatch.setenv("ROBRANK_LOAD_PLUGINS", "")
    fresh = load_plugins()
    names = fresh.registry.names("losses")
    assert names == ["ce", "contrastive", "glift", "infonce", "margin", "multisim", "npair", "quadruplet", "snr", "triplet"]
    triplet = fresh.registry.get("losses", "triplet")
    assert {"ptripletC", "pmtripletN", "pstripletC", "phtripletE", "pdtripletN", "pDtripletN"} <= set(triplet.aliases)
    assert (triplet.family, triplet.uses_miner, triplet.has_raw, triplet.batch) == ("triplet", True, True, "SPC-2")
    assert fresh.registry.get("losses", "pgliftE").metrics == ("E",)
    assert fresh.registry.get("losses", "pmsC").metrics == ("C", "N")
    assert "pgliftN" not in fresh.registry.get("losses", "glift").aliases
    provider = fresh.registry.component("losses", "triplet").provider
    assert (provider.distribution, provider.plugin) == ("robrank", "losses")


def test_cli_lists_reference_names(host, robrank_cli):
    result = robrank_cli("list", "losses", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    by_name = {c["name"]: c for c in payload["components"]["losses"]}
    assert "pmtripletN" in by_name["triplet"]["aliases"]
    assert by_name["margin"]["has_raw"] is True and by_name["multisim"]["uses_miner"] is False
