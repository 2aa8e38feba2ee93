"""The attack-spec grammar: canonical text, defaults, and one-line errors naming the field."""
from __future__ import annotations

import pytest

from robrank.attacks import DEFAULT_ALPHA, DEFAULT_EPS, DEFAULT_PGDITER, parse_spec
from robrank.errors import SpecError
from robrank.plugins import get_registry

REFERENCE_TYPES = {"CA", "QA", "SPQA", "ES", "TMA", "LTM", "GTM", "GTT"}


def test_every_reference_attack_is_registered_with_its_record():
    registry = get_registry()
    assert REFERENCE_TYPES <= set(registry.names("attacks"))
    assert registry.get("attacks", "CA").required == ("pm", "W")
    assert registry.get("attacks", "QA").required == ("pm", "M")
    assert registry.get("attacks", "SPQA").required == ("pm", "M")
    for name in ("ES", "TMA", "LTM", "GTM", "GTT"):
        record = registry.get("attacks", name)
        assert record.required == () and not record.signed
    assert {"prank", "GTprank"} <= set(registry.get("attacks", "SPQA").reports)
    assert {"r@1", "r@10", "r@100", "loss", "embshift"} <= set(registry.get("attacks", "ES").reports)
    assert {"ID-Retain@1", "retain@4"} <= set(registry.get("attacks", "GTT").reports)


def test_reference_spec_is_already_canonical():
    text = "CA:pm=+:W=1:eps=0.30196:alpha=0.011764:pgditer=32"
    spec = parse_spec(text, registry=get_registry())
    assert spec.type == "CA"
    assert spec.params == {"pm": "+", "W": 1, "eps": 0.30196, "alpha": 0.011764, "pgditer": 32}
    assert isinstance(spec.params["W"], int) and isinstance(spec.params["eps"], float)
    assert spec.text == text
    assert parse_spec(spec.text, registry=get_registry()) == spec


def test_defaults_are_the_reference_constructor_defaults_and_order_is_canonical():
    spec = parse_spec("es", registry=get_registry())
    assert spec.type == "ES"
    assert spec.params == {"eps": DEFAULT_EPS, "alpha": DEFAULT_ALPHA, "pgditer": DEFAULT_PGDITER}
    assert (DEFAULT_EPS, DEFAULT_ALPHA, DEFAULT_PGDITER) == (4 / 255, 1 / 255, 24)
    shuffled = parse_spec("QA:pgditer=32:M=2:eps=0.1:pm=-", registry=get_registry())
    assert shuffled.text == "QA:pm=-:M=2:eps=0.1:alpha=0.00392156862745098:pgditer=32"
    assert parse_spec(shuffled.text, registry=get_registry()) == shuffled


@pytest.mark.parametrize(
    "text, field",
    [
        ("CA:pm=*:W=x", "pm"),  # the example: first bad field is named
        ("CA:pm=+:W=x", "W"),
        ("CA:pm=+:W=0", "W"),
        ("CA:pm=+", "W"),
        ("CA:W=1", "pm"),
        ("QA:pm=-", "M"),
        ("SPQA:pm=+:M=1.5", "M"),
        ("QA:pm=+:M=1:W=2", "W"),
        ("ES:eps=abc", "eps"),
        ("ES:eps=-0.1", "eps"),
        ("ES:alpha=nan", "alpha"),
        ("ES:pgditer=0", "pgditer"),
        ("ES:foo=1", "foo"),
        ("ES:eps=0.1:eps=0.2", "eps"),
        ("ES:eps", "eps"),
    ],
)
def test_malformed_spec_names_the_field(text, field):
    with pytest.raises(SpecError) as info:
        parse_spec(text, registry=get_registry())
    message = str(info.value)
    assert "\n" not in message
    assert field in message.split(":", 1)[1]


def test_unknown_type_lists_registered_types():
    with pytest.raises(SpecError) as info:
        parse_spec("XYZ:pm=+", registry=get_registry())
    message = str(info.value)
    assert "XYZ" in message
    for name in REFERENCE_TYPES:
        assert name in message


def test_empty_spec_is_an_error():
    with pytest.raises(SpecError):
        parse_spec("  ", registry=get_registry())
