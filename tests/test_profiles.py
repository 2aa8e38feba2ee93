"""The bundled swipe profiles: exact lists of the reference (the reference), registered as plugins."""
from __future__ import annotations

import re

import pytest

import robrank_plugins.profiles as profiles_plugin
from robrank.plugins import Provider, load_plugins
from robrank_plugins.profiles import reference

ROB28 = "eps=0.30196:alpha=0.011764:pgditer=32"
ROB224 = "eps=0.03137:alpha=0.011764:pgditer=32"
# the reference's loose grammar: TYPE before the first colon, key=val fields
SPEC = re.compile(r"^(ES|QA|CA|SPQA|GTM|GTT|TMA|LTM)(:(\w+)=([\-\+\.\w]+))+$")


@pytest.fixture(scope="module")
def registry():
    host = load_plugins(entry_points=False, plugins=[(profiles_plugin, Provider("robrank", "test", "profiles"))])
    assert host.failures == []
    return host.registry


def specs(registry, name):
    return registry.get("profiles", name).factory()


@pytest.mark.parametrize(
    ("name", "count", "size", "ers"),
    [
        ("rob28", 9, 28, True),
        ("rob224", 9, 224, True),
        ("pami28", 32, 28, False),
        ("pami224", 32, 224, False),
        ("eccv28", 64, 28, False),
        ("eccv224", 48, 224, False),
        ("qccurve28", 48, 28, False),
    ],
)
def test_profile_sizes_and_flags(registry, name, count, size, ers):
    record = registry.get("profiles", name)
    listed = record.factory()
    assert len(listed) == count
    assert len(set(listed)) == count, "a profile must not list an attack twice"
    assert record.image_size == size and (record.score is not None) is ers
    if ers:
        assert record.score.name == "ERS" and len(record.score.columns) == 10
    for spec in listed:
        assert SPEC.match(spec), spec
        kind = spec.split(":")[0]
        if kind in ("CA", "QA", "SPQA"):
            assert re.search(r":pm=[+-]", spec), spec
        if kind == "CA":
            assert re.search(r":W=\d+", spec), spec
        if kind in ("QA", "SPQA"):
            assert re.search(r":M=\d+", spec), spec


def test_only_the_documented_profiles_are_registered(registry):
    reference = ["rob28", "rob224", "pami28", "pami224", "eccv28", "eccv224", "qccurve28"]
    stronger = ["rob28-aa", "rob224-aa", "rob28-l2", "rob224-l2"]  # docs/autoattack.md
    assert registry.names("profiles") == sorted(reference + stronger)
    assert registry.get("profiles", "cvpr") is registry.get("profiles", "rob224")  # the reference's identical copy


def test_rob28_is_the_exact_reference_list(registry):
    assert specs(registry, "rob28") == [
        f"CA:pm=+:W=1:{ROB28}",
        f"CA:pm=-:W=1:{ROB28}",
        f"QA:pm=+:M=1:{ROB28}",  # plain QA, not SPQA
        f"QA:pm=-:M=1:{ROB28}",
        f"TMA:{ROB28}",
        f"ES:{ROB28}",
        f"LTM:{ROB28}",
        f"GTM:{ROB28}",
        f"GTT:{ROB28}",
    ]


def test_rob224_differs_from_rob28_only_in_eps(registry):
    assert specs(registry, "rob224") == [s.replace(ROB28, ROB224) for s in specs(registry, "rob28")]


def test_pami_grids(registry):
    pami28 = specs(registry, "pami28")
    assert pami28[0] == "SPQA:pm=+:M=1:eps=0.03137:alpha=0.003922:pgditer=32"
    assert pami28[1] == "SPQA:pm=+:M=1:eps=0.30196:alpha=0.011764:pgditer=32"
    assert pami28[15] == "SPQA:pm=-:M=10:eps=0.30196:alpha=0.011764:pgditer=32"
    assert pami28[16] == "CA:pm=+:W=1:eps=0.03137:alpha=0.003922:pgditer=32"
    assert pami28[-1] == "CA:pm=-:W=10:eps=0.30196:alpha=0.011764:pgditer=32"
    pami224 = specs(registry, "pami224")
    assert pami224[0] == "SPQA:pm=+:M=1:eps=0.00784:alpha=0.003922:pgditer=32"
    assert pami224[-1] == "CA:pm=-:W=10:eps=0.03137:alpha=0.011764:pgditer=32"


def test_eccv_grids(registry):
    eccv28 = specs(registry, "eccv28")
    assert eccv28[:4] == [
        "CA:pm=+:W=1:eps=0.01:alpha=0.003922:pgditer=10",
        "CA:pm=+:W=1:eps=0.03:alpha=0.003922:pgditer=15",
        "CA:pm=+:W=1:eps=0.1:alpha=0.01:pgditer=20",
        "CA:pm=+:W=1:eps=0.3:alpha=0.01:pgditer=30",
    ]
    assert sum(s.startswith("CA:") for s in eccv28) == 32 and not any(s.startswith("ES") for s in eccv28)
    assert eccv28[-1] == "SPQA:pm=-:M=10:eps=0.3:alpha=0.01:pgditer=30"
    eccv224 = specs(registry, "eccv224")
    assert eccv224[0] == "CA:pm=+:W=1:eps=0.01:alpha=0.003922:pgditer=24"  # CA's first row: 24 steps
    assert eccv224[24] == "SPQA:pm=+:M=1:eps=0.01:alpha=0.003922:pgditer=10"  # SPQA's: 10
    assert eccv224[-1] == "SPQA:pm=-:M=10:eps=0.06:alpha=0.006:pgditer=20"


def test_qccurve28_is_the_eps_curve(registry):
    curve = specs(registry, "qccurve28")
    ca_plus = [s for s in curve if s.startswith("CA:pm=+")]
    eps = [float(re.search(r"eps=([\d.]+)", s).group(1)) for s in ca_plus]
    assert eps == pytest.approx([7 * i / 255 for i in range(12)], abs=5e-6)
    assert ca_plus[11] == "CA:pm=+:W=1:eps=0.30196:alpha=0.011764:pgditer=32"  # i = 11 is rob28's budget
    assert [s.split(":eps")[0] for s in curve[::12]] == ["CA:pm=+:W=1", "CA:pm=-:W=1", "SPQA:pm=+:M=1", "SPQA:pm=-:M=1"]


def test_installed_entry_point_provides_the_profiles():
    host = load_plugins(env={"ROBRANK_LOAD_PLUGINS": ""})
    component = host.registry.component("profiles", "rob28")
    assert component.provider.distribution == "robrank" and component.provider.plugin == "profiles"


def test_every_profile_spec_parses_with_the_attack_grammar():
    """Once the attack plugins exist, every profile entry must be a valid canonical spec."""
    spec_module = pytest.importorskip("robrank.attacks.spec")
    host = load_plugins(env={"ROBRANK_LOAD_PLUGINS": ""})
    if not host.registry.names("attacks"):
        pytest.skip("no attack plugins registered in this checkout yet")
    for name in reference.PROFILES:
        parsed = [spec_module.parse_spec(s, host.registry) for s in host.registry.get("profiles", name).factory()]
        assert len({p.text for p in parsed}) == len(parsed), name
