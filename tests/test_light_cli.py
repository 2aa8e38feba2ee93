"""The CLI answers at once when no model is involved: help, completion and listings import no torch.

What is checked, each in a fresh interpreter (the only way to see what an import pulls in):
``robrank --help``, ``robrank CMD --help`` for every command, shell completion, and
``robrank list`` of every kind, of all kinds at once and as ``--json``, leave ``torch`` out
of ``sys.modules`` — with the bundled plugins and with the repository's example packages
(``robrank-myattack``, ``robrank-mydataset``, ``robrank-catride``) loaded, whose entry-point
modules register lazy ``"module:attr"`` factories and whose attacks and defenses name
torch-free declarations (``declared=``). A control case (a bundled attack registered again
without its declaration, listed in a fresh interpreter) shows that ``torch`` in
``sys.modules`` is seen when a listing does import it; that such a record lists correctly is
tests/test_declarations.py's. Timing is a benchmark, not a test:
``benchmarks/cli_startup.py``.
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
EXAMPLES = "robrank-myattack,robrank-mydataset,robrank-catride"


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


def test_listing_every_kind_imports_no_torch():
    from robrank.records import KINDS

    calls = [(["list"], {}), (["list", "--json"], {}), *((["list", kind], {}) for kind in KINDS),
             *((["list", kind, "--json"], {}) for kind in KINDS)]
    record = probe(*calls)
    assert len(record) == len(calls)
    for seen in record:
        assert (seen["torch"], seen["code"]) == (False, 0), seen
    payload = json.loads(record[1]["output"])
    assert set(payload["components"]) == set(KINDS) and payload["failures"] == []
    attacks = {a["name"]: a for a in payload["components"]["attacks"]}
    defenses = {d["name"]: d for d in payload["components"]["defenses"]}
    # the fields come from the declarations, in the classes' canonical order
    assert [p["name"] for p in attacks["MICA"]["params"]][:3] == ["pm", "W", "mu"]
    assert attacks["CA"]["required"] == ["pm", "W"] and attacks["PGD"]["task"] == "classification"
    assert [p["name"] for p in defenses["act"]["params"]][-1] == "miner_margin"
    assert "lam" in [p["name"] for p in defenses["catride"]["params"]] and defenses["catride"]["family_defaults"]["28"]["pgditer"] == 16
    assert "PCTL % ↑pm=+/↓pm=-" in record[0]["output"] and "options eps,alpha,pgditer" in record[0]["output"]


def test_the_probe_sees_torch_when_a_listing_imports_an_undeclared_class():
    code = (
        "import sys\n"
        "from robrank.plugin_api import AttackRecord\n"
        "from robrank.plugins import Provider, Registry\n"
        "registry = Registry()\n"
        "registry.add('attacks', AttackRecord.of('robrank_plugins.attacks.es:EmbeddingShift', 'ES, undeclared', name='ES'),"
        " Provider('test', '0', 'test'))\n"
        "assert 'torch' not in sys.modules\n"
        "listed = registry.components('attacks')[0].record.details()\n"
        "assert listed['reports'][0] == 'loss' and 'torch' in sys.modules, listed\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
