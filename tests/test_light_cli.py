"""The CLI answers at once when no model is involved: help, completion and listings import no torch.

What is checked, each in a fresh interpreter (the only way to see what an import pulls in):
``robrank --help``, ``robrank CMD --help`` for every command, shell completion, and
``robrank list`` of the kinds whose records carry all their metadata, leave ``torch`` out of
``sys.modules`` — with the bundled plugins and with the repository's example packages
(``robrank-myattack``, ``robrank-mydataset``) loaded, whose entry-point modules register
lazy ``"module:attr"`` factories. A control case (``robrank list attacks``, which reads the
attack classes' fields) shows the probe does see torch when it is imported. Timing is a
benchmark, not a test: ``benchmarks/cli_startup.py``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

#: runs the CLI in-process once per argument list (a JSON list of [args, env]), recording
#: after each whether torch has been imported; prints the record as its last line
PROBE = """
import io, json, os, sys, contextlib
from robrank.cli import main
record = []
for args, env in json.loads(sys.argv[1]):
    os.environ.update(env)
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # click writes completions as bytes
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        sys.argv = ["robrank", *args]
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
    for key in env:
        del os.environ[key]
    out.flush()
    text = out.buffer.getvalue().decode()
    record.append({"args": args, "code": code, "torch": "torch" in sys.modules, "output": text})
print("PROBE " + json.dumps(record))
"""
#: the repository's example plugins (installed with the test extras); the rest stay unloaded
EXAMPLES = "robrank-myattack,robrank-mydataset"


def probe(*calls: tuple[list[str], dict[str, str]]) -> list[dict]:
    environment = {**os.environ, "ROBRANK_LOAD_PLUGINS": EXAMPLES}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(calls)], capture_output=True, text=True,
                          env=environment, timeout=300)
    lines = [text for text in done.stdout.splitlines() if text.startswith("PROBE ")]
    assert lines, done.stdout + done.stderr
    return json.loads(lines[-1].removeprefix("PROBE "))


def commands() -> list[str]:
    import click

    from robrank.cli import cli
    from robrank.plugins import load_plugins, use_host

    with use_host(load_plugins(env={"ROBRANK_LOAD_PLUGINS": EXAMPLES})):
        return sorted(cli.list_commands(click.Context(cli)))


def test_help_of_every_command_and_completion_import_no_torch():
    names = commands()
    assert {"train", "swipe", "list", "myattack-info"} <= set(names)  # the plugin's command is there too
    completion = {"_ROBRANK_COMPLETE": "bash_complete", "COMP_WORDS": "robrank li", "COMP_CWORD": "1"}
    calls = [(["--help"], {}), *(([name, "--help"], {}) for name in names), ([], completion)]
    record = probe(*calls)
    assert len(record) == len(calls)
    for seen in record:
        assert (seen["torch"], seen["code"]) == (False, 0), seen
    assert "Usage:" in record[0]["output"] and "swipe" in record[0]["output"]
    assert "plain,list" in record[-1]["output"].split()  # completion answered (bash format: type,value)


KINDS = ["datasets", "backbones", "losses", "miners", "profiles", "executors"]


def test_listing_the_kinds_that_need_no_implementation_imports_no_torch_and_attacks_do():
    record = probe(*((["list", kind, "--json"], {}) for kind in KINDS), (["list", "attacks", "--json"], {}))
    for kind, seen in zip(KINDS, record):
        assert (seen["torch"], seen["code"]) == (False, 0), seen
        assert json.loads(seen["output"])["components"][kind], kind
    # the control: attack fields come from the classes, so listing attacks imports them (and torch)
    attacks = record[-1]
    assert attacks["torch"] is True and attacks["code"] == 0
    listed = {a["name"]: a for a in json.loads(attacks["output"])["components"]["attacks"]}
    assert [p["name"] for p in listed["MICA"]["params"]][:2] == ["pm", "W"]
    assert listed["CA"]["required"] == ["pm", "W"]
