"""Every hook a plugin can implement is documented and exercised (datasette's meta-test).

A hook added to ``robrank.hookspecs`` without a section in docs/plugins.md, or without a
test that registers something through it, fails here: an undocumented hook is one nobody
outside the project can use, and an untested one silently breaks.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from robrank import hookspecs
from robrank.records import RECORD_TYPES, Record

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "plugins.md"
TEST_FILES = sorted(
    {
        *(REPO / "tests").rglob("*.py"),
        *(REPO / "examples").glob("*/tests/*.py"),
    }
)


def hook_names() -> list[str]:
    """Every function in robrank.hookspecs carrying pluggy's hookspec marker."""
    marker = f"{hookspecs.PROJECT}_spec"
    return sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, marker))


def documented_headings() -> list[str]:
    return [line for line in DOCS.read_text().splitlines() if re.match(r"#{2,4} ", line)]


def implementations(path: Path) -> set[str]:
    """Hook names a test file implements: ``def register_x(...)`` or ``_make_plugin(register_x=...)``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)
    return names


def test_the_spec_list_is_complete():
    # REGISTER_HOOKS maps every component hook to its kind; register_commands is the one extra
    assert set(hook_names()) == set(hookspecs.REGISTER_HOOKS) | {"register_commands"}


@pytest.mark.parametrize("hook", hook_names())
def test_hook_has_a_docs_section_with_its_signature(hook):
    headings = [h for h in documented_headings() if re.search(rf"`?{hook}\b", h)]
    assert headings, f"docs/plugins.md has no section heading naming {hook}"
    text = DOCS.read_text()
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert f"{hook}({params})" in text, f"docs/plugins.md does not show the signature {hook}({params})"


def section(hook: str) -> str:
    """The text of the docs section whose heading names ``hook``, up to the next heading of its level."""
    lines = DOCS.read_text().splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"(#{2,4}) ", line)
        if match and re.search(rf"`?{hook}\b", line):
            level = len(match.group(1))
            end = next((j for j in range(i + 1, len(lines)) if re.match(rf"#{{1,{level}}} ", lines[j])), len(lines))
            return "\n".join(lines[i:end])
    return ""


@pytest.mark.parametrize("hook", sorted(hookspecs.REGISTER_HOOKS))
def test_hook_section_lists_every_record_field(hook):
    """Kind-specific fields (and the factory's signature) in the hook's section; shared ones once, above."""
    record = RECORD_TYPES[hookspecs.REGISTER_HOOKS[hook]]
    text = section(hook)
    assert record.__name__ in text, f"the {hook} section does not name {record.__name__}"
    shared = {f.name for f in dataclasses.fields(Record)} - {"factory"}
    missing = [f.name for f in dataclasses.fields(record) if f.name not in shared and f"`{f.name}`" not in text]
    assert not missing, f"the {hook} section of docs/plugins.md does not describe {record.__name__} fields {missing}"


def test_shared_record_fields_are_documented_before_the_hook_sections():
    text = DOCS.read_text()
    first_hook = min(text.index(f"### {h}") for h in hookspecs.REGISTER_HOOKS)
    missing = [f.name for f in dataclasses.fields(Record) if f"`{f.name}`" not in text[:first_hook]]
    assert not missing, f"docs/plugins.md does not describe the shared record fields {missing}"


@pytest.mark.parametrize("hook", hook_names())
def test_hook_is_exercised_by_a_test(hook):
    users = [p.relative_to(REPO) for p in TEST_FILES if hook in implementations(p)]
    assert users, f"no test file registers anything through {hook} (define a plugin with `def {hook}(...)` in a test)"


def test_the_meta_test_sees_a_missing_hook(tmp_path):
    """The checks above would catch a hook that is neither documented nor implemented."""
    assert not [h for h in documented_headings() if "register_widgets" in h]
    probe = tmp_path / "test_probe.py"
    probe.write_text("def register_widgets(register):\n    pass\n\nplugin(register_gadgets=f)\n")
    assert {"register_widgets", "register_gadgets"} <= implementations(probe)
    assert "register_widgets" not in set().union(*(implementations(p) for p in TEST_FILES))
