"""The core names no bundled component: ``robrank/`` must work the same with the bundled plugins gone.

Components own their meaning (ERS columns belong to the profile, display units to the attack,
``-C`` suffixes to the defense, default backbones to the dataset), so no code in ``robrank/``
needs to know that an attack is called ``CA`` or a profile ``rob28``. This test keeps it so.
It parses every module of ``robrank/`` (AST) and looks at every string constant that is not
a docstring; a hit is a constant that *is* the name or an alias of a component registered by
the bundled plugins (``robrank_plugins``: the source of the names is their registrations,
not a list kept here), or a spec / config string whose fields name one (``CA:pm=+:W=1``,
``mnist:c2f2:ptripletN``). Prose that cites a name as an example (a help text's "e.g.") is
not code depending on it and is not a hit; neither is the attribute name of a
``getattr``/``hasattr``/``setattr``.

Scanned kinds: attacks, profiles, defenses, datasets and backbones. Loss and miner names are
ordinary words the core uses in other meanings (``margin`` the hyper-parameter, ``triplet``
the batch layout, ``random``), so they are left to review.

To see the offending locations: ``python -m pytest tests/test_no_bundled_names.py -q`` lists
each hit as ``path:line: 'name' (kind)`` in the failure message, or run
``python tests/test_no_bundled_names.py`` to print them all without pytest.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "robrank"
BUNDLED = "robrank"  # the distribution that ships robrank_plugins
KINDS = ("attacks", "profiles", "defenses", "datasets", "backbones")
#: a spec or config string: colon-separated fields, e.g. CA:pm=+:W=1 or mnist:c2f2:ptripletN
SPEC_LIKE = re.compile(r"^[\w@.+-]+(?::[\w@.=+-]+)+$")
#: attribute-name arguments are not component names
ATTRIBUTE_CALLS = {"getattr", "hasattr", "setattr", "delattr"}
#: (file relative to robrank/, name): a constant with the same spelling but another meaning
OTHER_MEANINGS: dict[tuple[str, str], str] = {
    ("records.py", "none"): "NO_WEIGHTS, the CLI spelling of 'no pretrained weights' (--pretrained none)",
    ("models/external.py", "none"): "NO_NORMALIZATION_NAME, the spelling of 'no input normalisation' (--normalize none)",
    ("plot/figure.py", "none"): "matplotlib's svg.fonttype value that keeps text as text in SVG files",
}


def bundled_names() -> dict[str, str]:
    """name or alias -> kind, for every component the bundled plugins register."""
    from robrank.plugins import get_registry

    registry = get_registry()
    names: dict[str, str] = {}
    for kind in KINDS:
        for component in registry.components(kind):
            if component.provider.distribution != BUNDLED:
                continue
            for name in (component.record.name, *component.record.aliases):
                names.setdefault(name, kind)
    return names


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def _attribute_names(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ATTRIBUTE_CALLS and len(node.args) >= 2:
            found.add(id(node.args[1]))
    return found


def _named(text: str, names: dict[str, str]) -> list[str]:
    value = text.strip()
    if value in names:
        return [value]
    if SPEC_LIKE.match(value):
        return [field.split("=")[0] for field in value.split(":") if field.split("=")[0] in names]
    return []


def scan(names: dict[str, str] | None = None, root: Path = CORE) -> list[str]:
    """Every hit under ``root`` as ``path:line: 'name' (kind)``."""
    names = bundled_names() if names is None else names
    hits = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        skip = _docstrings(tree) | _attribute_names(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in skip:
                continue
            for name in _named(node.value, names):
                if (relative, name) not in OTHER_MEANINGS:
                    hits.append(f"robrank/{relative}:{node.lineno}: {name!r} ({names[name]})")
    return hits


def test_the_names_come_from_the_bundled_registrations():
    names = bundled_names()
    for name, kind in (("CA", "attacks"), ("rob28", "profiles"), ("act", "defenses"), ("mnist", "datasets"), ("c2f2", "backbones")):
        assert names.get(name) == kind
    assert len(names) > 30


def test_the_scan_finds_what_it_must_and_nothing_else(tmp_path):
    names = {"CA": "attacks", "rob28": "profiles", "mnist": "datasets"}
    (tmp_path / "mod.py").write_text(
        '"""A docstring may say CA and rob28."""\n'
        'PROFILE = "rob28"\n'
        'SPEC = "CA:pm=+:W=1"\n'
        'TRIPLE = "mnist:c2f2:ptripletN"\n'
        'HELP = "e.g. rob28 or rob224"\n'
        'def f(x):\n'
        '    """CA again."""\n'
        '    return getattr(x, "CA", None), "CAT", "rob28x"\n'
    )
    assert scan(names, tmp_path) == [
        "robrank/mod.py:2: 'rob28' (profiles)",
        "robrank/mod.py:3: 'CA' (attacks)",
        "robrank/mod.py:4: 'mnist' (datasets)",
    ]


def test_other_meanings_are_still_needed():
    for relative, name in OTHER_MEANINGS:
        text = (CORE / relative).read_text(encoding="utf-8")
        assert f'"{name}"' in text, f"{relative} no longer spells {name!r}: drop it from OTHER_MEANINGS"


def test_core_names_no_bundled_component():
    hits = scan()
    assert not hits, "robrank/ names bundled components (ask the records instead):\n" + "\n".join(hits)


if __name__ == "__main__":
    print("\n".join(scan()) or "no hits")
