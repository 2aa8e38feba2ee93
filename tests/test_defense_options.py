"""Defenses declare their options with ``Param``, as attacks declare spec fields.

What is checked: an option a defense does not declare, or a value that does not fit its
declaration, is a one-line ConfigError naming the defense's options, both when the config
is resolved (before a run directory exists) and when the defense is built; the training
config records the image-size family's defaults of exactly the options a defense declares
(the bundled ones: the reference budgets, unchanged); ``robrank list defenses`` shows them.
"""
from __future__ import annotations

import json

import pytest

from robrank.errors import ConfigError
from robrank.plugin_api import SIZE_28, SIZE_224, Defense, DefenseRecord, Param, hookimpl
from robrank.plugins import load_plugins, use_host
from robrank.training.config import TrainConfig, resolve_config


@pytest.fixture(scope="module")
def host():
    h = load_plugins(env={"ROBRANK_LOAD_PLUGINS": ""})
    with use_host(h):
        yield h


def test_an_unknown_option_names_the_options_the_defense_has(host):
    with pytest.raises(ConfigError) as info:
        resolve_config(TrainConfig("fashion", "c2f2", "ptripletN", defense="act", defense_options={"epz": 0.1}), host.registry)
    message = str(info.value)
    assert "\n" not in message and "'epz'" in message
    assert "its options are: eps, alpha, pgditer, image_size, train_bn, miner_margin" in message
    with pytest.raises(ConfigError, match=r"defense 'hm' has no option 'icss'; its options are: .*ics_lambda, method$"):
        host.registry.create("defenses", "hm", icss=True)


@pytest.mark.parametrize(
    ("name", "options", "pattern"),
    [
        ("act", {"pgditer": 0}, r"defense 'act': option pgditer must be a whole number >= 1 \(got 0\)"),
        ("est", {"eps": "big"}, r"defense 'est': option eps must be a finite number in \[0.0, 1.0\] \(got 'big'\)"),
        ("hm", {"ics_lambda": "abc"}, r"defense 'hm': option ics_lambda must be a finite number \(got 'abc'\)"),
        ("ses", {"weight": float("nan")}, r"defense 'ses': option weight must be a finite number"),
    ],
)
def test_a_mistyped_option_is_a_one_line_error(host, name, options, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        host.registry.create("defenses", name, **options)
    assert "\n" not in str(info.value)


def test_string_values_from_the_command_line_are_parsed_by_their_declaration(host):
    hm = host.registry.create("defenses", "hm", ics_lambda="0.25", gradual="off", ics="yes")
    assert (hm.options["ics_lambda"], hm.options["gradual"], hm.options["ics"]) == (0.25, False, True)
    assert host.registry.create("defenses", "act", pgditer="3", eps=0.1).pgditer == 3


def test_family_defaults_come_from_the_declaration_and_only_declared_options_are_injected(host, register_plugin):
    class Jitter(Defense):
        name = "jitter"
        params = (Param("scale", float, None, low=0.0, help="jitter amplitude"),)
        family_defaults = {SIZE_28: {"scale": 0.5}, SIZE_224: {"scale": 0.05}}

        def loss(self, model, criterion, images, labels):  # pragma: no cover - not trained here
            return criterion(model(images), labels)

    class Bare(Defense):
        name = "bare"

        def loss(self, model, criterion, images, labels):  # pragma: no cover - not trained here
            return criterion(model(images), labels)

    class Plugin:
        @hookimpl
        def register_defenses(self, register):
            register(DefenseRecord.of(Jitter, summary="jitter"))
            register(DefenseRecord(name="bare", factory=Bare, summary="no options"))

    with register_plugin(Plugin()) as plugged:
        registry = plugged.registry
        small = resolve_config(TrainConfig("fashion", "c2f2", "ptripletN", defense="jitter"), registry)
        big = resolve_config(TrainConfig("cub", "resnet18", "ptripletN", defense="jitter"), registry)
        assert (small.defense_options, big.defense_options) == ({"scale": 0.5}, {"scale": 0.05})
        # a defense without an eps option gets no eps: nothing is injected that it did not declare
        assert resolve_config(TrainConfig("fashion", "c2f2", "ptripletN", defense="bare"), registry).defense_options == {}
        with pytest.raises(ConfigError, match=r"defense 'bare' has no option 'eps'; it takes no options"):
            registry.create("defenses", "bare", eps=0.1)
        assert registry.create("defenses", "jitter", scale=2).options == {"scale": 2.0}


def test_list_defenses_shows_the_declared_options(host, robrank_cli):
    with use_host(host):
        text = robrank_cli("list", "defenses")
        payload = json.loads(robrank_cli("list", "defenses", "--json").stdout)
    assert text.exit_code == 0, text.output
    assert "options eps,alpha,pgditer,image_size,train_bn,pairwise_eps" in text.output
    est = next(c for c in payload["components"]["defenses"] if c["name"] == "est")
    shown = {p["name"]: p for p in est["params"]}
    assert list(shown) == ["eps", "alpha", "pgditer", "image_size", "train_bn", "pairwise_eps"]
    assert shown["pairwise_eps"]["default"] == 1e-6 and shown["pgditer"]["low"] == 1 and shown["eps"]["high"] == 1.0
    assert est["family_defaults"]["224"] == {"eps": 8 / 255, "alpha": 1 / 255, "pgditer": 32}
