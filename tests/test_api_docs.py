"""Every example in docs/api.md runs as written, in document order, in an empty folder.

``python`` blocks are executed (a block whose first line is ``# file: NAME`` is written to
that file instead: it is a module the later examples import); each line of a ``bash`` block
is a ``robrank`` command, run in-process.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(DOC.read_text())]


def test_the_page_has_examples_of_every_entry_point():
    code = "\n".join(text for _, text in blocks())
    for needle in ("robrank.evaluate(", "robrank.attack(", "robrank.gallery(", "robrank.load_run(", ".save(",
                   "--model", "--weights", "--save-adversarial", "timm:", "--weights-key"):
        assert needle in code, needle


def test_every_example_runs(tmp_path, monkeypatch, robrank_cli):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for number, (language, text) in enumerate(blocks()):
        where = f"docs/api.md example {number + 1} ({language})"
        if language == "python":
            first = text.splitlines()[0]
            if first.startswith("# file: "):
                (tmp_path / first[len("# file: "):].strip()).write_text(text)
                continue
            exec(compile(text, where, "exec"), {"__name__": "__docs__"})  # noqa: S102 - the documentation's own code
            continue
        for line in text.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            args = shlex.split(line)
            assert args[0] == "robrank", f"{where}: {line}"
            result = robrank_cli(*args[1:], "--no-progress" if args[1] in ("swipe", "attack") else [])
            assert result.exit_code == 0, (where, line, result)
    assert (tmp_path / "my-model.swipe-rob28.json").is_file() and (tmp_path / "adv" / "adversarial.pt").is_file()
