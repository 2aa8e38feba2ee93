"""Nothing in the repository names the machine it was developed on.

Docs, scripts and stored results must work for (and tell nothing private about) whoever clones
the repo: no absolute paths of a developer's machine, no host names, and no references to files
the repository does not hold (the reference is cited by name and paper instead).
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()

#: (what is wrong, pattern); built from pieces so this file does not match itself
FORBIDDEN = [
    ("an absolute path of a developer's machine", re.compile(r"(?<![\w.~-])/(?:" + "|".join(["work", "root", "home", "Users", "scratch", "mnt"]) + r")/")),
    ("a temporary path (use mktemp or a relative folder)", re.compile(r"(?<![\w.~-])/" + "tmp/")),
    ("a host name in stored data", re.compile(r'"host' + r'name"\s*:')),
    ("a reference to a file the repo does not have", re.compile(r"\b(?:" + "|".join(["targets", "science", "style"]) + r")\.md\b|\b" + "pjswipe" + r"\.py\b")),
    ("a data folder beside the checkout", re.compile(r"\.\./" + "shared/")),
]
#: the one place a sibling data folder is legitimate: CI's own layout (a fresh clone with shared/ beside it)
ALLOWED = {("a data folder beside the checkout", ".ci/run")}
TEXT_SUFFIXES = {".py", ".md", ".txt", ".json", ".jsonl", ".toml", ".cfg", ".ini", ".yaml", ".yml", ".sh", ".rst", ""}


def tracked_text_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    files = []
    for name in filter(None, listed.split("\0")):
        path = REPO / name
        if path.suffix in TEXT_SUFFIXES and path.is_file() and path.resolve() != THIS:
            files.append(path)
    return files


def test_no_machine_specific_leftovers_in_tracked_files():
    problems = []
    for path in tracked_text_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        relative = path.relative_to(REPO).as_posix()
        for what, pattern in FORBIDDEN:
            if (what, relative) in ALLOWED:
                continue
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                problems.append(f"{relative}:{line}: {what}: {match.group(0)!r}")
    assert not problems, "\n".join(problems[:50])


def test_stored_results_hold_no_absolute_path():
    """docs/results keeps hardware descriptions and run-relative paths only."""
    found = []

    def walk(value, where):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")
        elif isinstance(value, str) and re.search(r"(?:^|[\s=])/[\w.-]+/", value):
            found.append(f"{where}: {value[:120]}")

    results = sorted((REPO / "docs" / "results").rglob("*.json*"))
    assert results, "docs/results holds no stored results"
    for path in results:
        lines = path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]
        for n, line in enumerate(lines):
            if line.strip():
                walk(json.loads(line), f"{path.relative_to(REPO)}#{n}")
    assert not found, "\n".join(found[:20])


def test_the_scan_catches_what_it_should():
    """The patterns themselves: a leftover of each kind is caught, ordinary text is not."""
    bad = ["see /wo" + "rk/main/runs", "into /t" + "mp/site", '"host' + 'name": "vm"', "targets" + ".md §1", "tools/pj" + "swipe.py", "../sha" + "red/data"]
    good = ["runs/repro/x", "/proc/cpuinfo", "/usr/share/fashion-mnist", "docs/results.md", "the reference's pjswipe script", "~/.torch"]
    for text in bad:
        assert any(p.search(text) for _, p in FORBIDDEN), text
    for text in good:
        assert not any(p.search(text) for _, p in FORBIDDEN), text
