"""pyproject.toml stays in sync with the tree: every package is shipped, every entry point resolves."""
from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _packages_on_disk() -> set[str]:
    found = set()
    for top, dotted in (("robrank", "robrank"), ("plugins", "robrank_plugins")):
        for init in (REPO / top).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / top)
            found.add(".".join([dotted, *rel.parts]) if rel.parts else dotted)
    return found


def test_every_package_directory_is_listed():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert _packages_on_disk() == listed


def test_every_bundled_entry_point_imports_and_implements_a_hook():
    from robrank import hookspecs

    hook_names = set(hookspecs.REGISTER_HOOKS) | {"register_commands"}
    for name, target in PYPROJECT["project"]["entry-points"]["robrank"].items():
        module = importlib.import_module(target)
        implemented = {h for h in hook_names if callable(getattr(module, h, None))}
        assert implemented, f"entry point {name} -> {target} implements no robrank hook"


def test_console_script_and_pytest_plugin_are_declared():
    assert PYPROJECT["project"]["scripts"]["robrank"] == "robrank.cli:main"
    assert PYPROJECT["project"]["entry-points"]["pytest11"]["robrank"] == "robrank.testing"
    assert set(PYPROJECT["project"]["optional-dependencies"]) >= {"faiss", "gpu", "test"}
