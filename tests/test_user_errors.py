"""Bad input through the CLI: one line naming the problem and the fix, exit 2 (130 for Ctrl-C), no work lost.

Each test is one row of issue 13's tables, driven the way a user meets it (the CLI, in-process
or in a subprocess). The plugin rows (``sys.exit()`` at import, a hook registering something
that is not a record, two plugins claiming a name) live in tests/test_broken_plugins.py, with
the installed-looking broken packages they need.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robrank.cli import cli

MAX_LINE = 200


def run_cli(*args: str):
    from click.testing import CliRunner

    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def one_line_error(result, *fragments: str) -> str:
    """The single ``Error:`` line of a refused command (exit 2, no traceback)."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    assert len(lines[0]) < MAX_LINE + len("Error: ") + 80, lines[0]  # + room for the user's own path
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# ----------------------------------------------------------------------------- checkpoints


def test_a_zero_byte_checkpoint_is_a_one_line_error(tmp_path):
    empty = tmp_path / "last.pt"
    empty.write_bytes(b"")
    for command in ("eval", "swipe"):
        extra = ("-p", "rob28") if command == "swipe" else ()
        one_line_error(run_cli(command, str(empty), *extra), str(empty), "empty (0 bytes")


# ----------------------------------------------------------------------------- Ctrl-C


def _interrupt(args: list[str], run_dir: Path) -> subprocess.CompletedProcess:
    """Start ``robrank ARGS``, wait for its first checkpoint, then press Ctrl-C (SIGINT)."""
    env = {k: v for k, v in os.environ.items() if k != "ROBRANK_DEBUG"}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "robrank", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=240)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


TRAIN = ["--dataset", "digits", "--backbone", "lenet", "--loss", "ptripletN", "--embedding-dim", "16", "--batch-size", "8",
         "--device", "cpu", "--num-workers", "0", "--checkpoint-every", "2", "--no-progress"]  # fmt: skip


def test_ctrl_c_during_train_exits_130_and_keeps_a_checkpoint_to_resume_from(tmp_path):
    """A real SIGINT to a real process: click's standalone mode must not turn it into "Aborted!", exit 1."""
    from robrank.io import load_checkpoint

    run_dir = tmp_path / "run"
    done = _interrupt(["train", *TRAIN, "--epochs", "400", "--run-dir", str(run_dir)], run_dir)
    assert done.returncode == 130, done.stderr[-2000:]
    assert "Aborted!" not in done.stderr and "Traceback" not in done.stderr
    [line] = [ln for ln in done.stderr.splitlines() if "interrupted" in ln]
    assert line.startswith("robrank train: interrupted;") and "rerun with --resume" in line
    saved = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert saved["step"] >= 2
    # the hint works: resume picks up from the saved step
    resumed = run_cli("train", "--resume", "--run-dir", str(run_dir), "--max-steps", str(saved["step"] + 2), "--no-progress")
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == saved["step"] + 2


def test_ctrl_c_during_run_exits_130(tmp_path, monkeypatch):
    from robrank.training import engine

    original = engine._Batches.iterate

    def interrupted(self, batches, epoch):
        for n, batch in enumerate(original(self, batches, epoch)):
            if n == 3:
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(engine._Batches, "iterate", interrupted)
    run_dir = tmp_path / "run"
    result = run_cli("run", *TRAIN, "--epochs", "2", "--run-dir", str(run_dir), "-p", "rob28", "-m", "1")
    assert result.exit_code == 130, result.output
    assert "robrank run: interrupted; work so far is saved; rerun with --resume to continue" in result.output
    assert "Aborted!" not in result.output
    from robrank.io import load_checkpoint

    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 3
