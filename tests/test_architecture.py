"""The shape of the house (docs/architecture.md), checked from the source so it stays that way.

* the plugin registry is created at the entry points and passed down: no ``get_registry()``
  below them;
* the import graph of robrank/ has no cycle, counting imports inside functions too;
* no function is longer than :data:`MAX_LINES` lines in robrank/ or plugins/.

Everything here reads the files with ``ast``; nothing is imported.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "robrank"
PLUGINS = REPO / "plugins"

#: where a registry may be looked up, with why: the modules and functions where a process or a
#: call from outside starts. Everything else receives the registry as an argument.
ENTRY_POINTS: dict[str, set[str] | None] = {
    "robrank/plugins.py": None,  # defines it
    "robrank/api.py": None,  # the Python API: each public call is an entry point
    "robrank/testing.py": None,  # pytest fixtures for plugin authors
    "robrank/cli/": None,  # every click command
    # a new interpreter (spawned --devices process, a sweep job on a cluster node) loads the
    # installed plugins itself: the parent's registry holds plugin code that need not pickle
    "robrank/training/engine.py": {"_spawned_worker", "_needed"},  # _needed: train(TrainConfig) from Python
    "robrank/swipe/distributed.py": {"_worker"},
    "robrank/sweep/cell.py": {"__call__"},
}

MAX_LINES = 100


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _allowed(rel: str) -> set[str] | None | bool:
    """None: anywhere in the file; a set: only inside those functions; False: nowhere."""
    for prefix, functions in ENTRY_POINTS.items():
        if rel == prefix or (prefix.endswith("/") and rel.startswith(prefix)):
            return functions
    return False


def registry_lookups(path: Path) -> list[tuple[int, str | None]]:
    """(line, enclosing function) of every ``get_registry(...)`` / ``get_host(...)`` call in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str | None]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, child.name)
                continue
            if isinstance(child, ast.Call):
                f = child.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
                if name in ("get_registry", "get_host"):
                    found.append((child.lineno, function))
            visit(child, function)

    visit(tree, None)
    return found


def test_the_registry_is_looked_up_only_at_the_entry_points():
    stray = []
    for path in _modules(CORE) + _modules(PLUGINS):
        rel = _rel(path)
        allowed = _allowed(rel)
        for line, function in registry_lookups(path):
            if allowed is None or (allowed and function in allowed):
                continue
            stray.append(f"{rel}:{line} ({function or 'module level'})")
    assert not stray, "pass the registry down instead of looking it up: " + ", ".join(stray)


def test_the_lookup_scanner_finds_a_lookup(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("from robrank.plugins import get_registry\n\ndef f():\n    return get_registry().names('attacks')\n")
    assert registry_lookups(sample) == [(4, "f")]


# ---------------------------------------------------------------------------- import graph


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(root: Path = CORE) -> dict[str, set[str]]:
    """module -> the robrank modules it imports, at module level or inside any function.

    ``from X import name`` counts as importing ``X.name`` when that is a module, else ``X``,
    and importing a module counts its packages too (their ``__init__`` runs first). A module's
    own ancestor packages are left out (``from .. import __version__``): Python
    initialises them before the module, so such an import can never close a circle. Imports
    under ``if TYPE_CHECKING:`` are left out too: they never run.
    """
    paths = {_module_name(p): p for p in _modules(root)}
    graph: dict[str, set[str]] = {name: set() for name in paths}

    def with_packages(target: str) -> set[str]:
        """``a.b.c`` runs ``a/__init__``, ``a/b/__init__`` and ``a/b/c``: each can close a circle."""
        parts = target.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & set(paths)

    for name, path in paths.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node.test)
                       for stmt in node.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets: set[str] = set()
            if isinstance(node, ast.Import):
                targets = {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, path.name == "__init__.py", node)
                targets = {f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names}
            parts = name.split(".")
            ancestors = {".".join(parts[:i]) for i in range(1, len(parts) + (path.name == "__init__.py"))}
            graph[name] |= {run for target in targets for run in with_packages(target)} - ancestors - {name}
    return graph


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


#: import edges left in the graph knowingly, with why (none: the plan moved into the training
#: package, so the engine plans a bare TrainConfig without a circle back through robrank.plan)
KNOWN_EDGES: frozenset[tuple[str, str]] = frozenset()


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    for source, target in KNOWN_EDGES:
        graph[source].discard(target)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_reporting_stands_above_the_figures():
    graph = import_graph()
    figures = {name for name in graph if name.startswith("robrank.plot")}
    reporting = {"robrank.swipe.report", "robrank.swipe.html", "robrank.swipe.latex", "robrank.swipe.tables"}
    assert not {name for f in figures for name in graph[f]} & reporting
    assert "robrank.plot.curve" in graph["robrank.swipe.html"]  # the page embeds the figures


def test_the_cycle_finder_sees_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "robrank"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import x\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x\n")
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        graph = import_graph(pkg)
    finally:
        REPO = saved
    assert graph["robrank.b"] == {"robrank.a"} and graph["robrank.c"] == set()  # robrank/__init__ is b's own package
    assert find_cycle(graph) == ["robrank.a", "robrank.b", "robrank.a"]


# ---------------------------------------------------------------------------- long functions


def long_functions(root: Path, limit: int = MAX_LINES) -> list[str]:
    """``path:line name (N lines)`` of every function or method longer than ``limit`` lines."""
    out = []
    for path in _modules(root):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = node.end_lineno - first + 1
                if length > limit:
                    out.append(f"{_rel(path) if root.is_relative_to(REPO) else path.name}:{node.lineno} {node.name} ({length} lines)")
    return out


def test_no_function_is_longer_than_a_hundred_lines():
    found = long_functions(CORE) + long_functions(PLUGINS)
    assert not found, f"split these (at most {MAX_LINES} lines each): " + ", ".join(found)


def test_the_length_check_counts_decorators_and_body(tmp_path):
    (tmp_path / "m.py").write_text("@dec\ndef f():\n" + "    x = 1\n" * 99 + "\ndef g():\n    pass\n")
    assert long_functions(tmp_path, limit=100) == ["m.py:2 f (101 lines)"]
    assert long_functions(tmp_path, limit=101) == []


#: the reasons a function-local import may give (CONTRIBUTING.md): a fast, torch-free start, an optional dependency, an import cycle
LOCAL_IMPORT_REASONS = ("# lazy:", "# optional:", "# cycle:")


def unexplained_local_imports(root: Path) -> list[str]:
    """Imports inside function bodies whose line (or the comment line above) gives no reason."""
    found = []
    for path in _modules(root):
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    here = lines[node.lineno - 1]
                    above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                    if not any(r in here or above.startswith(r) for r in LOCAL_IMPORT_REASONS):
                        found.append(f"{_rel(path) if path.is_relative_to(REPO) else path}:{node.lineno}: {here.strip()}")
    return sorted(set(found))


def test_every_function_local_import_says_why():
    assert unexplained_local_imports(CORE) == []


def test_the_local_import_scanner_finds_an_unexplained_one(tmp_path):
    (tmp_path / "m.py").write_text(
        "def f():\n"
        "    import json  # lazy: keeps robrank --help fast\n"
        "    # optional: matplotlib (plot extra)\n"
        "    import matplotlib\n"
        "    import re\n"
    )
    found = unexplained_local_imports(tmp_path)
    assert len(found) == 1 and found[0].endswith(":5: import re")
