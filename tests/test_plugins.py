"""The plugin core: provenance, failures, collisions, strict and allow-list modes.

Test plugins are plain objects registered through ``load_plugins(plugins=...)`` or fake
entry points; installed entry points are only used where a test says so.
"""
from __future__ import annotations

import json
import types

import pluggy
import pytest
from click.testing import CliRunner

import robrank
from robrank import plugins as plugin_core
from robrank.cli import cli
from robrank.errors import PluginError, UnknownNameError
from robrank.plugins import Provider, load_plugins, use_host
from robrank.attacks.base import PM
from robrank.records import AttackRecord, DatasetRecord, LossRecord


def _make_plugin(**hooks):
    """A plugin object whose hooks are the given functions, marked with robrank.hookimpl."""
    ns = types.SimpleNamespace()
    for name, fn in hooks.items():
        fn.__name__ = name
        setattr(ns, name, robrank.hookimpl(fn))
    return ns


def _dataset(name="toy", **kw):
    return DatasetRecord(name=name, factory=lambda root: None, summary=f"{name} data", **kw)


def _attack(name="XA"):
    return AttackRecord(name=name, factory=dict, summary="an attack", params=(PM,))


PROV_A = Provider("robrank-a", "1.2.3", "a")
PROV_B = Provider("robrank-b", "0.9", "b")


def test_components_carry_their_provider():
    def register_datasets(register):
        register(_dataset("toy", image_size=28, num_test_classes=7))

    def register_attacks(register):
        register(_attack("XA"))

    host = load_plugins(entry_points=False, plugins=[(_make_plugin(register_datasets=register_datasets, register_attacks=register_attacks), PROV_A)])
    comp = host.registry.component("datasets", "toy")
    assert comp.provider == PROV_A
    assert comp.record.num_test_classes == 7
    assert host.registry.names("attacks") == ["XA"]
    assert host.failures == []


def test_unknown_name_lists_registered_names():
    def register_datasets(register):
        register(_dataset("alpha"))
        register(_dataset("beta"))

    host = load_plugins(entry_points=False, plugins=[(_make_plugin(register_datasets=register_datasets), PROV_A)])
    with pytest.raises(UnknownNameError) as err:
        host.registry.get("datasets", "gamma")
    assert "'gamma'" in str(err.value) and "alpha, beta" in str(err.value)
    assert "\n" not in str(err.value)


def test_aliases_and_case_folding_resolve_to_the_component():
    def register_losses(register):
        # one component's own aliases may differ in case (the loss grammar tells pdtripletN from pDtripletN)
        register(LossRecord(name="triplet", factory=dict, summary="t", aliases=("ptripletN", "pdtripletN", "pDtripletN")))
        register(LossRecord(name="dswitch", factory=dict, summary="t", aliases=("pswitchN",)))

    host = load_plugins(entry_points=False, plugins=[(_make_plugin(register_losses=register_losses), PROV_A)])
    assert host.registry.get("losses", "ptripletN").name == "triplet"
    assert host.registry.get("losses", "TRIPLET").name == "triplet"
    assert host.registry.get("losses", "PDTRIPLETN").name == "triplet"
    assert host.registry.get("losses", "PSWITCHn").name == "dswitch"
    with pytest.raises(UnknownNameError, match="unknown loss 'tripplet'; did you mean 'triplet'"):
        host.registry.get("losses", "tripplet")


def test_names_that_differ_only_in_case_collide_across_components():
    def reg_a(register):
        register(_attack("lenetattack"))

    def reg_b(register):
        register(_attack("LeNetAttack"))

    plugins = [(_make_plugin(register_attacks=reg_a), PROV_A), (_make_plugin(register_attacks=reg_b), PROV_B)]
    with pytest.warns(UserWarning, match="the same as 'lenetattack' but for case"):
        host = load_plugins(entry_points=False, plugins=plugins)
    assert host.registry.names("attacks") == []  # reported like any other collision: neither is trusted
    assert {f.stage for f in host.failures} == {"collision"}


def test_collision_fails_both_plugins_and_names_both_sources():
    def reg_a(register):
        register(_attack("CA"))
        register(_attack("AONLY"))

    def reg_b(register):
        register(_attack("CA"))

    plugins = [(_make_plugin(register_attacks=reg_a), PROV_A), (_make_plugin(register_attacks=reg_b), PROV_B)]
    with pytest.warns(UserWarning, match="'CA'"):
        host = load_plugins(entry_points=False, plugins=plugins)
    assert host.registry.names("attacks") == []  # neither claim is trusted, and a failed plugin fails as a whole
    by_dist = {f.distribution: f for f in host.failures}
    assert {d: f.stage for d, f in by_dist.items()} == {"robrank-a": "collision", "robrank-b": "collision"}
    assert "robrank-b 0.9" in by_dist["robrank-a"].error and "robrank-a 1.2.3" in by_dist["robrank-b"].error
    with pytest.raises(PluginError, match="strict"):
        load_plugins(entry_points=False, plugins=plugins, strict=True)


def test_alias_collision_is_also_detected():
    def reg_a(register):
        register(LossRecord(name="triplet", factory=dict, summary="t", aliases=("ptripletN",)))

    def reg_b(register):
        register(LossRecord(name="ptripletN", factory=dict, summary="t2"))

    with pytest.warns(UserWarning):
        host = load_plugins(entry_points=False, plugins=[(_make_plugin(register_losses=reg_a), PROV_A), (_make_plugin(register_losses=reg_b), PROV_B)])
    assert "robrank-b" in next(f.error for f in host.failures if f.distribution == "robrank-a")
    with pytest.raises(PluginError, match="robrank-b"):
        load_plugins(entry_points=False, plugins=[(_make_plugin(register_losses=reg_a), PROV_A), (_make_plugin(register_losses=reg_b), PROV_B)], strict=True)


def test_a_bundled_name_wins_a_collision():
    bundled = Provider("robrank", "1.0", "core")

    def reg_core(register):
        register(_attack("CA"))

    def reg_plugin(register):
        register(_attack("CA"))

    with pytest.warns(UserWarning, match="bundled one is kept"):
        # the third-party plugin comes first, and still loses
        host = load_plugins(entry_points=False, plugins=[(_make_plugin(register_attacks=reg_plugin), PROV_A), (_make_plugin(register_attacks=reg_core), bundled)])
    assert host.registry.component("attacks", "CA").provider == bundled
    assert [(f.distribution, f.stage) for f in host.failures] == [("robrank-a", "collision")]


def test_sys_exit_inside_a_hook_is_contained():
    def reg(register):
        raise SystemExit(4)

    with pytest.warns(UserWarning, match="sys.exit"):
        host = load_plugins(entry_points=False, plugins=[(_make_plugin(register_attacks=reg), PROV_A)])
    assert host.failures[0].error == "SystemExit: the plugin called sys.exit(4)"


def test_plugin_raising_on_registration_is_skipped_and_recorded():
    def good(register):
        register(_dataset("fine"))

    def bad(register):
        register(_dataset("half"))
        raise RuntimeError("boom at registration")

    with pytest.warns(UserWarning, match="boom at registration"):
        host = load_plugins(entry_points=False, plugins=[(_make_plugin(register_datasets=good), PROV_A), (_make_plugin(register_datasets=bad), PROV_B)])
    assert host.registry.names("datasets") == ["fine"]  # nothing half-registered survives
    [failure] = host.failures
    assert (failure.distribution, failure.stage) == ("robrank-b", "register")
    assert "RuntimeError: boom at registration" == failure.error


def test_wrong_record_type_is_a_failure():
    def reg(register):
        register(_attack("XA"))  # an attack through the datasets hook

    with pytest.warns(UserWarning, match="expected DatasetRecord"):
        host = load_plugins(entry_points=False, plugins=[(_make_plugin(register_datasets=reg), PROV_A)])
    assert [(f.stage, f.distribution) for f in host.failures] == [("register", "robrank-a")]
    assert host.registry.names("datasets") == []
    with pytest.raises(PluginError, match="expected DatasetRecord"):
        load_plugins(entry_points=False, plugins=[(_make_plugin(register_datasets=reg), PROV_A)], strict=True)


def test_typo_hook_is_caught_by_check_pending():
    def register_atacks(register):  # typo
        register(_attack())

    with pytest.warns(UserWarning):
        host = load_plugins(entry_points=False, plugins=[(_make_plugin(register_atacks=register_atacks), PROV_A)])
    assert [f.stage for f in host.failures] == ["validate"]
    assert "register_atacks" in host.failures[0].error or "unknown hook" in host.failures[0].error


def test_strict_mode_turns_failures_into_errors():
    def bad(register):
        raise ValueError("nope")

    with pytest.raises(PluginError, match="strict"):
        load_plugins(entry_points=False, plugins=[(_make_plugin(register_datasets=bad), PROV_B)], strict=True)
    with pytest.raises(PluginError):
        load_plugins(entry_points=False, plugins=[(_make_plugin(register_datasets=bad), PROV_B)], env={"ROBRANK_STRICT_PLUGINS": "1"})


class _FakeDist:
    def __init__(self, name, version):
        self.name, self.version = name, version


class _FakeEntryPoint:
    def __init__(self, name, dist, target):
        self.name, self.dist, self._target = name, _FakeDist(*dist), target

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def _fake_eps(monkeypatch, eps):
    monkeypatch.setattr(plugin_core, "_entry_points", lambda: eps)


def test_import_failure_is_recorded_and_other_plugins_still_load(monkeypatch):
    def reg(register):
        register(_dataset("ok"))

    _fake_eps(
        monkeypatch,
        [
            _FakeEntryPoint("broken", ("robrank-broken", "0.1"), ImportError("No module named 'missingdep'")),
            _FakeEntryPoint("fine", ("robrank-fine", "2.0"), _make_plugin(register_datasets=reg)),
        ],
    )
    with pytest.warns(UserWarning, match="missingdep"):
        host = load_plugins(env={})
    assert host.registry.component("datasets", "ok").provider == Provider("robrank-fine", "2.0", "fine")
    assert [(f.plugin, f.stage) for f in host.failures] == [("broken", "import")]


def test_allow_list_and_no_plugins(monkeypatch):
    def reg_bundled(register):
        register(_dataset("builtin"))

    def reg_x(register):
        register(_dataset("xdata"))

    def reg_y(register):
        register(_dataset("ydata"))

    _fake_eps(
        monkeypatch,
        [
            _FakeEntryPoint("datasets-builtin", ("robrank", "0.1.0"), _make_plugin(register_datasets=reg_bundled)),
            _FakeEntryPoint("x", ("robrank-x", "1"), _make_plugin(register_datasets=reg_x)),
            _FakeEntryPoint("y", ("robrank-y", "1"), _make_plugin(register_datasets=reg_y)),
        ],
    )
    assert load_plugins(env={}).registry.names("datasets") == ["builtin", "xdata", "ydata"]
    assert load_plugins(env={"ROBRANK_LOAD_PLUGINS": "robrank-x"}).registry.names("datasets") == ["builtin", "xdata"]
    assert load_plugins(env={"ROBRANK_LOAD_PLUGINS": "y"}).registry.names("datasets") == ["builtin", "ydata"]
    assert load_plugins(env={"ROBRANK_LOAD_PLUGINS": ""}).registry.names("datasets") == ["builtin"]


def test_factory_crash_becomes_one_line_plugin_error():
    def boom(**kw):
        raise ZeroDivisionError("division by zero\nsecond line")

    def reg(register):
        register(AttackRecord(name="BOOM", factory=boom, summary="crashes"))

    host = load_plugins(entry_points=False, plugins=[(_make_plugin(register_attacks=reg), PROV_A)])
    with pytest.raises(PluginError) as err:
        host.registry.create("attacks", "BOOM")
    assert "robrank-a 1.2.3" in str(err.value) and "\n" not in str(err.value)


def test_register_commands_adds_a_cli_subcommand():
    import click

    def register_commands(cli):
        @cli.command(name="hello")
        @click.argument("who")
        def hello(who):
            click.echo(f"hello {who}")

    host = load_plugins(entry_points=False, plugins=[(_make_plugin(register_commands=register_commands), PROV_A)])
    with use_host(host):
        result = CliRunner().invoke(cli, ["hello", "world"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "hello world"


def test_list_json_shows_components_providers_and_failures():
    def reg(register):
        register(_dataset("toy", image_size=224, channels=3, num_test_classes=98, profile="rob224"))

    def bad(register):
        raise RuntimeError("kaput")

    with pytest.warns(UserWarning):
        host = load_plugins(entry_points=False, plugins=[(_make_plugin(register_datasets=reg), PROV_A), (_make_plugin(register_attacks=bad), PROV_B)])
    with use_host(host):
        result = CliRunner().invoke(cli, ["list", "--json"])
        text = CliRunner().invoke(cli, ["list", "datasets"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    [toy] = payload["components"]["datasets"]
    assert toy["name"] == "toy" and toy["provider"] == {"distribution": "robrank-a", "version": "1.2.3", "plugin": "a"}
    assert toy["num_test_classes"] == 98 and toy["profile"] == "rob224"
    assert payload["failures"] == [{"plugin": "b", "distribution": "robrank-b", "version": "0.9", "stage": "register", "error": "RuntimeError: kaput"}]
    assert "toy" in text.output and "robrank-a 1.2.3" in text.output


def test_cli_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and robrank.__version__ in result.output


def test_bundled_plugins_come_from_the_robrank_distribution():
    host = load_plugins(env={"ROBRANK_LOAD_PLUGINS": ""})
    bundled = [c for k in ("datasets", "backbones", "losses", "attacks", "profiles") for c in host.registry.components(k)]
    assert bundled, "no bundled components registered"
    assert {c.provider.distribution for c in bundled} == {"robrank"}
    assert host.failures == [], host.failures


def test_hookimpl_is_the_public_pluggy_marker():
    assert isinstance(robrank.hookimpl, pluggy.HookimplMarker)
