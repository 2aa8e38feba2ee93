"""Declarations and implementations: a record that names both lists from the declaration alone.

What is checked: a declared attack or defense is listed (fields, reports, options) without
its implementation module being imported, and built from the implementation, which loads
then; an implementation that is not a subclass of its declaration, or one that changes a
declared fact, is refused in one line naming both classes; a record without a declaration
still lists, by importing its class; the bundled classes keep the facts their declarations
state (the spec order ``pm, W, ...`` included), and the lazy implementation reference pickles.
"""
from __future__ import annotations

import json
import pickle
import re
import sys
import textwrap

import pytest

from robrank.plugin_api import AttackRecord, DefenseRecord, PluginError, hookimpl
from robrank.records import Implementation

#: a torch-free declaration module and an implementation module, written per test
FIELDS = """
from robrank.plugin_api import EMBSHIFT, AttackDeclaration, DefenseDeclaration, Param

class DeclaredAttackDeclaration(AttackDeclaration):
    name = "DECL"
    params = (Param("k", int, 2, low=1, implicit=True, help="neighbours"),)
    reports = ("loss", EMBSHIFT)

class DeclaredDefenseDeclaration(DefenseDeclaration):
    name = "decl"
    params = (Param("scale", float, 0.5, low=0.0, help="noise amplitude"),)
"""
IMPLEMENTATION = """
import torch
from robrank.plugin_api import Attack, Defense
from {fields} import DeclaredAttackDeclaration, DeclaredDefenseDeclaration

class Good(DeclaredAttackDeclaration, Attack):
    def objective(self, emb, ctx, step):
        return emb.sum(dim=1)

class Stray(Attack):  # the same name, but not built on the declaration
    name = "DECL"

class Redeclares(DeclaredAttackDeclaration, Attack):
    reports = ("loss",)  # a fact the listing showed otherwise

class GoodDefense(DeclaredDefenseDeclaration, Defense):
    def loss(self, model, criterion, images, labels):
        return criterion(model(images), labels)

class StrayDefense(Defense):
    name = "decl"
"""


@pytest.fixture
def modules(tmp_path, monkeypatch, request):
    """(fields module, implementation module) names, importable for this test only."""
    tag = re.sub(r"\W", "_", request.node.name)
    fields, impl = f"decl_fields_{tag}", f"decl_impl_{tag}"
    (tmp_path / f"{fields}.py").write_text(textwrap.dedent(FIELDS))
    (tmp_path / f"{impl}.py").write_text(textwrap.dedent(IMPLEMENTATION.format(fields=fields)))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield fields, impl
    for name in (fields, impl):
        sys.modules.pop(name, None)


def plugin(attack: AttackRecord | None = None, defense: DefenseRecord | None = None) -> object:
    class Plugin:
        @hookimpl
        def register_attacks(self, register):
            if attack is not None:
                register(attack)

        @hookimpl
        def register_defenses(self, register):
            if defense is not None:
                register(defense)

    return Plugin()


def listed(robrank_cli, kind: str) -> dict:
    result = robrank_cli("list", kind, "--json")
    assert result.exit_code == 0, result.output
    return {c["name"]: c for c in json.loads(result.stdout)["components"][kind]}


def test_a_declared_attack_lists_without_its_implementation_and_builds_from_it(modules, register_plugin, robrank_cli):
    fields, impl = modules
    record = AttackRecord.of(f"{impl}:Good", "declared", name="DECL", declared=f"{fields}:DeclaredAttackDeclaration")
    with register_plugin(plugin(attack=record)) as host:
        shown = listed(robrank_cli, "attacks")["DECL"]
        assert [p["name"] for p in shown["params"]][:4] == ["k", "eps", "alpha", "pgditer"]
        assert shown["reports"] == ["loss", "embshift"]
        assert fields in sys.modules and impl not in sys.modules  # the listing read the declaration only
        built = host.registry.create("attacks", "DECL", eps=0.1, k=3)
        assert impl in sys.modules and type(built).__name__ == "Good" and built.k == 3
        factory = host.registry.get("attacks", "DECL").factory
        assert isinstance(factory, Implementation) and pickle.loads(pickle.dumps(factory)) == factory


@pytest.mark.parametrize(
    "cls, why", [("Stray", "is not a subclass of its declaration"), ("Redeclares", "changes reports of its declaration")], ids=["stray", "redeclares"]
)
def test_an_implementation_that_departs_from_its_declaration_is_refused_in_one_line(modules, register_plugin, cls, why):
    fields, impl = modules
    record = AttackRecord.of(f"{impl}:{cls}", "stray", name="DECL", declared=f"{fields}:DeclaredAttackDeclaration")
    with register_plugin(plugin(attack=record)) as host:
        assert host.registry.get("attacks", "DECL").params[0].name == "k"  # looking it up still works
        with pytest.raises(PluginError) as caught:
            host.registry.create("attacks", "DECL", eps=0.1)
    message = str(caught.value)
    assert "\n" not in message and why in message
    assert f"{impl}:{cls}" in message and f"{fields}:DeclaredAttackDeclaration" in message


def test_a_declared_defense_lists_its_options_without_its_implementation(modules, register_plugin, robrank_cli):
    fields, impl = modules
    good = DefenseRecord.of(f"{impl}:GoodDefense", "declared", name="decl", declared=f"{fields}:DeclaredDefenseDeclaration")
    with register_plugin(plugin(defense=good)) as host:
        shown = listed(robrank_cli, "defenses")["decl"]
        assert [p["name"] for p in shown["params"]] == ["scale"] and "declared" not in shown
        assert impl not in sys.modules
        assert host.registry.create("defenses", "decl", scale=2).options == {"scale": 2.0}


def test_a_defense_implementation_outside_its_declaration_is_refused(modules, register_plugin):
    fields, impl = modules
    stray = DefenseRecord.of(f"{impl}:StrayDefense", "stray", name="decl", declared=f"{fields}:DeclaredDefenseDeclaration")
    with register_plugin(plugin(defense=stray)) as host:
        with pytest.raises(PluginError, match="is not a subclass of its declaration") as caught:
            host.registry.create("defenses", "decl")
    assert "\n" not in str(caught.value) and f"{impl}:StrayDefense" in str(caught.value)


def test_a_record_without_a_declaration_lists_by_importing_its_class(modules, register_plugin, robrank_cli):
    _, impl = modules
    record = AttackRecord.of(f"{impl}:Good", "undeclared", name="DECL")  # the class is the only source of its fields
    with register_plugin(plugin(attack=record)):
        assert impl not in sys.modules
        shown = listed(robrank_cli, "attacks")["DECL"]
        assert impl in sys.modules
        assert shown["params"][0]["name"] == "k" and shown["reports"] == ["loss", "embshift"]


def test_a_missing_declaration_is_a_one_line_error_naming_it(register_plugin, robrank_cli):
    record = AttackRecord.of("nowhere_impl:X", "missing", name="GONE", declared="nowhere_fields_module:GoneDeclaration")
    with register_plugin(plugin(attack=record)) as host:
        with pytest.raises(PluginError, match="its declaration 'nowhere_fields_module:GoneDeclaration' failed to load"):
            host.registry.get("attacks", "GONE")


def test_every_bundled_attack_and_defense_keeps_its_declared_facts(register_plugin):
    """Loading each bundled implementation runs the check; the canonical spec order is the declaration's."""
    with register_plugin() as host:
        registry = host.registry
        for name in registry.names("attacks"):
            record = registry.get("attacks", name)
            cls = record.factory.load()  # checked against its declaration here
            assert tuple(cls.parameters()) == record.params
        assert [p.name for p in registry.get("attacks", "CA").params][:5] == ["pm", "W", "eps", "alpha", "pgditer"]
        for name in registry.names("defenses"):
            record = registry.get("defenses", name)
            cls = record.factory.load()
            assert tuple(cls.parameters()) == record.params and dict(cls.family_defaults) == dict(record.family_defaults)
