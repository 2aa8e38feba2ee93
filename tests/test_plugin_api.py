"""robrank.plugin_api: the one module plugin authors import from.

What is checked: every name in its ``__all__`` resolves (a renamed internal would break
plugins silently otherwise), ``dir()`` lists exactly the promised names, importing the
module does not import torch (so a plugin's registration module stays light), and the
bundled plugins and the example packages import robrank through it alone.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import robrank.plugin_api as api


def test_every_public_name_resolves_and_dir_lists_them():
    missing = [name for name in api.__all__ if not hasattr(api, name)]
    assert missing == []
    assert len(set(api.__all__)) == len(api.__all__)
    assert dir(api) == sorted(api.__all__)


def test_an_unknown_name_is_an_attribute_error():
    try:
        api.not_a_name  # noqa: B018
    except AttributeError as exc:
        assert "not_a_name" in str(exc)
    else:  # pragma: no cover - the assertion is the test
        raise AssertionError("robrank.plugin_api.not_a_name resolved")


def test_importing_the_module_and_the_records_does_not_import_torch():
    code = (
        "import sys\n"
        "from robrank.plugin_api import AttackRecord, DefenseRecord, Param, hookimpl, ConfigError, Score\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "from robrank.plugin_api import Attack\n"
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------- the bundled plugins and the examples use it alone

REPO = Path(__file__).resolve().parent.parent
#: the one module plugin code imports robrank from
PUBLIC = "robrank.plugin_api"
#: robrank's pytest plugin: a plugin's own tests and benchmarks may use its fixtures and helpers
TESTING = "robrank.testing"


def robrank_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of robrank or a robrank.* module in ``path`` (function-local ones too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "robrank"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "robrank":
            found.append((node.lineno, node.module))
    return found


def internal_imports(root: Path) -> list[str]:
    hits = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(REPO)
        allowed = {PUBLIC}
        if {"tests", "benchmarks"} & set(relative.parts):
            allowed.add(TESTING)
        hits += [f"{relative}:{line}: {module}" for line, module in robrank_imports(path) if module not in allowed]
    return hits


def test_bundled_plugins_and_examples_import_only_the_public_module():
    hits = internal_imports(REPO / "plugins") + internal_imports(REPO / "examples")
    assert hits == [], "import these names from robrank.plugin_api instead:\n" + "\n".join(hits)


def test_the_scan_sees_every_form_of_import(tmp_path):
    (tmp_path / "plugin.py").write_text(
        "import robrank\nimport robrank.records as r\nfrom robrank.attacks import Gallery\n"
        "from robrank.plugin_api import Param\nimport robrank_plugins\n"
        "def f():\n    from robrank.errors import ConfigError\n"
    )
    assert robrank_imports(tmp_path / "plugin.py") == [
        (1, "robrank"), (2, "robrank.records"), (3, "robrank.attacks"), (4, "robrank.plugin_api"), (7, "robrank.errors"),
    ]


def test_docs_plugins_md_documents_every_public_name():
    text = (REPO / "docs" / "plugins.md").read_text()
    reference = text[text.index("## Every name of `robrank.plugin_api`"):]
    missing = [name for name in api.__all__ if f"| `{name}` |" not in reference]
    assert missing == []
