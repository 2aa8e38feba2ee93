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
from robrank.plugins import get_registry

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
    # as from a terminal: a shell without job control starts background jobs with SIGINT ignored
    proc = subprocess.Popen([sys.executable, "-m", "robrank", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
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



def test_ctrl_c_while_a_checkpoint_is_written_finishes_the_file_then_interrupts(tmp_path, monkeypatch):
    """Ctrl-C inside torch.save used to leave its zip writer raising a RuntimeError (exit 1, traceback)."""
    import torch

    from robrank.io import load_checkpoint, save_checkpoint

    real_save = torch.save
    pressed_during_write = []

    def save_with_ctrl_c(obj, handle, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs at the next bytecode, mid-write
        time.sleep(0.01)
        pressed_during_write.append(True)  # still writing: the interrupt waited
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_with_ctrl_c)
    path = tmp_path / "last.pt"
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (nohup ignores it)
    try:
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(path, {"step": 7, "w": torch.arange(5.0)})
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C works again afterwards
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert pressed_during_write == [True]
    saved = load_checkpoint(path)  # the whole file, not half of one
    assert saved["step"] == 7 and torch.equal(saved["w"], torch.arange(5.0))


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


# ----------------------------------------------------------------------------- disks


def test_a_read_only_run_directory_fails_before_the_first_epoch(tmp_path, monkeypatch):
    """Root ignores file modes, so the read-only disk is simulated where robrank writes: os.replace."""
    import errno

    import robrank.io as rio

    real_mkstemp = rio.tempfile.mkstemp

    def read_only(*args, **kwargs):
        if str(tmp_path / "ro") in str(kwargs.get("dir", "")):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(rio.tempfile, "mkstemp", read_only)
    started = []
    from robrank.training import engine

    monkeypatch.setattr(engine._Batches, "plan", lambda self, g: started.append(1) or [])
    result = run_cli("train", *TRAIN, "--epochs", "1", "--run-dir", str(tmp_path / "ro" / "run"))
    one_line_error(result, "cannot write", "config.json", "Read-only file system")
    assert started == []  # refused before the first epoch


def test_a_full_disk_fails_before_the_first_epoch_and_a_failed_save_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import errno
    import shutil
    from collections import namedtuple

    from robrank.io import load_checkpoint

    usage = namedtuple("usage", "total used free")
    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    one_line_error(run_cli("train", *TRAIN, "--epochs", "1", "--run-dir", str(tmp_path / "full")), "MiB free", "needs about")
    monkeypatch.setattr(shutil, "disk_usage", real_usage)

    # the disk fills up during training: the save of step 4 fails, step 2's checkpoint stays whole
    import robrank.io as rio

    real_replace, calls = rio.os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if str(dst).endswith("last.pt") and len([c for c in calls if str(c).endswith("last.pt")]) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(rio.os, "replace", replace)
    run_dir = tmp_path / "run"
    line = one_line_error(run_cli("train", *TRAIN, "--epochs", "1", "--max-steps", "6", "--run-dir", str(run_dir)),
                          "cannot write", "No space left on device", "previous file is unchanged")
    assert "last.pt" in line
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 2
    assert not list((run_dir / "checkpoints").glob(".*tmp"))  # no half-written file left behind


# ----------------------------------------------------------------------------- non-finite options


@pytest.mark.parametrize(("option", "value"), [("--lr", "nan"), ("--weight-decay", "nan"), ("--lr", "inf"), ("--eps", "-inf")])
def test_non_finite_training_options_are_refused(option, value, tmp_path):
    for command in ("train", "run"):
        result = run_cli(command, *TRAIN, option, value, "--run-dir", str(tmp_path / command))
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert f"Invalid value for '{option}'" in result.output and "not a finite number" in result.output
        assert not (tmp_path / command).exists()


def test_a_non_finite_defense_option_is_refused(tmp_path):
    result = run_cli("train", *TRAIN, "--plugin", "act", "-o", "eps=NaN", "--run-dir", str(tmp_path / "run"))
    assert result.exit_code == 2 and "not a finite number" in result.output


def test_a_diverging_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path, register_plugin):
    """A loss that turns NaN at step 5: the step-4 checkpoint survives, nothing after it is saved."""
    import robrank
    import torch
    from robrank.io import load_checkpoint
    from robrank.records import LossRecord

    class Diverging(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, embeddings, labels):
            self.calls += 1
            loss = (embeddings[0::2] - embeddings[1::2]).pow(2).mean()
            return loss * float("nan") if self.calls >= 5 else loss

    class Plugin:
        @robrank.hookimpl
        def register_losses(self, register):
            register(LossRecord(name="diverging", factory=lambda metric, miner=None, **kw: Diverging(), summary="NaN at step 5",
                                metrics=("N",), family="diverging"))

    run_dir = tmp_path / "run"
    with register_plugin(Plugin()):
        result = run_cli("train", "--dataset", "digits", "--backbone", "lenet", "--loss", "diverging", "--metric", "N",
                         "--embedding-dim", "16", "--batch-size", "8", "--device", "cpu", "--num-workers", "0",
                         "--checkpoint-every", "2", "--epochs", "1", "--run-dir", str(run_dir), "--no-progress")
    line = one_line_error(result, "training diverged", "NaN/inf", "last good checkpoint (step 4) is kept", "lower --lr")
    assert len(line) < MAX_LINE + 10
    saved = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert saved["step"] == 4
    assert all(bool(torch.isfinite(t).all()) for t in saved["model"].values() if t.is_floating_point())
    assert not (run_dir / "metrics.jsonl").exists() or "nan" not in (run_dir / "metrics.jsonl").read_text().lower()


# ----------------------------------------------------------------------------- NaN weights


@pytest.fixture
def nan_run(tmp_path):
    import torch
    from robrank.io import load_checkpoint, save_checkpoint
    from robrank.testing import write_untrained_run

    run = write_untrained_run(tmp_path / "nan-run")
    path = run / "checkpoints" / "last.pt"
    payload = load_checkpoint(path)
    payload["model"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in payload["model"].items()}
    save_checkpoint(path, payload)
    return run


def test_a_checkpoint_with_nan_weights_is_refused_by_eval_attack_and_swipe(nan_run):
    fragments = ("embeddings of 364 of 364 test images are NaN/inf", "cannot be scored")
    one_line_error(run_cli("eval", str(nan_run), "-D", "cpu"), *fragments)
    one_line_error(run_cli("attack", str(nan_run), "-A", "CA:pm=+:W=1:eps=0.03:alpha=0.01:pgditer=2", "-m", "1", "-D", "cpu"), *fragments)
    one_line_error(run_cli("swipe", str(nan_run), "-p", "rob28", "-m", "1", "-D", "cpu", "--no-progress"), *fragments)
    results = nan_run / "swipe-rob28.json"
    assert not results.exists() or "ers" not in json.loads(results.read_text())


# ----------------------------------------------------------------------------- a corrupt image in a worker


def test_a_corrupt_jpeg_in_a_dataloader_worker_is_one_short_line_and_the_training_is_saved(tmp_path, register_plugin):
    """The test split holds a corrupt JPEG: validation fails after training, in a worker process."""
    import robrank
    from PIL import Image
    from robrank.data.base import DatasetSource, FileImageDataset
    from robrank.io import load_checkpoint
    from robrank.records import DatasetRecord

    root = tmp_path / "photos"
    root.mkdir()
    paths, labels = [], []
    for i in range(16):
        path = root / f"{i:02d}.jpg"
        Image.new("RGB", (28, 28), color=(i * 15, 255 - i * 15, 7 * i)).save(path)
        paths.append(path)
        labels.append(i % 4)
    paths[13].write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")

    def to_tensor(image):
        import numpy as np
        import torch

        return torch.from_numpy(np.asarray(image.convert("L"), dtype=np.float32) / 255.0)[None]

    class Folder(DatasetSource):
        name = "corrupt-folder"

        def search_paths(self):
            return [root]

        def locate(self):
            return root

        def is_present(self):
            return True

        def verify(self):
            return None

        def load_split(self, split, augment=False):
            chosen = [i for i in range(16) if (labels[i] < 2) == (split == "train")]
            return FileImageDataset([paths[i] for i in chosen], [labels[i] for i in chosen], to_tensor, image_size=28, channels=1)

    class Plugin:
        @robrank.hookimpl
        def register_datasets(self, register):
            register(DatasetRecord(name="corrupt-folder", factory=lambda root=None: Folder(root), summary="a folder with a bad JPEG",
                                   image_size=28, channels=1, num_test_classes=2, profile="rob28"))

    run_dir = tmp_path / "run"
    with register_plugin(Plugin()):
        result = run_cli("train", "--dataset", "corrupt-folder", "--backbone", "lenet", "--loss", "ptripletN", "--embedding-dim", "8",
                         "--batch-size", "2", "--device", "cpu", "--num-workers", "1", "--epochs", "1", "--run-dir", str(run_dir),
                         "--no-progress")
    line = one_line_error(result, "image file", "13.jpg", "corrupt or truncated", "re-extract")
    assert "Traceback" not in line and "worker" not in line
    assert len(line) - len(str(paths[13])) < MAX_LINE
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] >= 1  # the training before the failure is kept


# ----------------------------------------------------------------------------- trust markers


def test_a_partial_swipe_is_marked_in_the_console_the_json_and_every_report_row(tiny_run, tmp_path):
    """``-m 1`` attacks 16 of the 364 digits: the ERS is printed, but never as a full result."""
    from robrank.swipe.schema import load_results

    out = tmp_path / "partial.json"
    result = run_cli("swipe", str(tiny_run), "-p", "rob28", "-m", "1", "-b", "16", "--output", str(out), "-D", "cpu", "--no-progress")
    assert result.exit_code == 0, result.output
    payload = load_results(out, registry=get_registry())
    assert payload["schema_version"] == 3
    assert payload["coverage"] == {"queries": 16, "total_queries": 364, "attacks": 9, "planned_attacks": 9, "partial": "16 of 364 queries"}
    assert payload["ers"]["partial"] == "16 of 364 queries"
    ers = payload["ers"]["ers"]
    [row] = [ln for ln in result.output.splitlines() if ln.startswith(("tiny", "run/")) and "*" in ln][:1] or [""]
    assert f"{ers:.1f}*" in result.output  # console: the ERS carries the marker ...
    assert "16 of 364 queries" in result.output  # ... and the footnote says why

    # beside a full swipe (a full-coverage copy of the same numbers), only the partial row is marked
    full = dict(payload, max_batches=None, attacks=[dict(a, count=364, sums={side: {k: v * 364 for k, v in a[side].items()} for side in ("orig", "adv")})
                                                    for a in payload["attacks"]])
    full["coverage"] = dict(payload["coverage"], queries=364, partial=None)
    full["ers"] = dict(payload["ers"], partial=None)
    full["model"] = dict(payload["model"], run_dir="/runs/full-run")
    (tmp_path / "full.json").write_text(json.dumps(full))
    for fmt in ("table", "markdown", "csv", "json"):
        text = run_cli("report", str(out), str(tmp_path / "full.json"), "-f", fmt)
        assert text.exit_code == 0, text.output
        if fmt == "json":
            rows = {r["label"].split("/")[0]: r for r in json.loads(text.output)}
            assert rows["full-run"]["partial"] is None and [r["partial"] for k, r in rows.items() if k != "full-run"] == ["16 of 364 queries"]
            continue
        lines = [ln for ln in text.output.splitlines() if f"{ers:.1f}" in ln or "16 of 364" in ln]
        partial_rows = [ln for ln in lines if "full-run" not in ln]
        full_rows = [ln for ln in lines if "full-run" in ln]
        assert full_rows and all("*" not in ln for ln in full_rows), fmt
        assert partial_rows and all("*" in ln or "16 of 364 queries" in ln for ln in partial_rows), (fmt, partial_rows)
        assert "16 of 364 queries" in text.output, fmt


def test_a_non_ers_partial_swipe_says_so(tiny_run, tmp_path, register_plugin):
    import robrank
    from robrank.records import ProfileRecord

    class Plugin:
        @robrank.hookimpl
        def register_profiles(self, register):
            register(ProfileRecord(name="one-ca", factory=lambda: ["CA:pm=+:W=1:eps=0.03:alpha=0.01:pgditer=2"], summary="one attack"))

    out = tmp_path / "one.json"
    with register_plugin(Plugin()):
        result = run_cli("swipe", str(tiny_run), "-p", "one-ca", "-m", "1", "-b", "8", "--output", str(out), "-D", "cpu")
        assert result.exit_code == 0, result.output
        assert "partial result: 8 of 364 queries; not comparable with a full swipe" in result.output
        report = run_cli("report", str(out))
    assert "*" in report.output and "8 of 364 queries" in report.output


def test_a_profile_for_another_image_size_is_refused_unless_forced(tiny_run, tmp_path):
    out = tmp_path / "rob224.json"
    line = one_line_error(run_cli("swipe", str(tiny_run), "-p", "rob224", "-m", "1", "--output", str(out), "-D", "cpu"),
                          "'rob224' is made for 224x224", "digits has 28x28", "-p rob28", "--force")
    assert "rob28" in line and not out.exists()
    one_line_error(run_cli("run", *TRAIN, "-p", "rob224", "--run-dir", str(tmp_path / "run")), "'rob224' is made for 224x224")
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before training
    forced = run_cli("swipe", str(tiny_run), "-p", "rob224", "-m", "1", "-b", "4", "--output", str(out), "-D", "cpu", "--force")
    assert forced.exit_code == 0, forced.output


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ("CA:pm=+:W=99999:eps=0.03:alpha=0.01:pgditer=2", ("W=99999 exceeds the", "gallery items outside a query's class", "use W<=")),
        ("QA:pm=-:M=400:eps=0.03:alpha=0.01:pgditer=2", ("M=400 exceeds the",)),
        ("CA:pm=+:W=1:eps=50:alpha=0.01:pgditer=2", ("field eps must be at most 1.0 under norm=inf", "(got 50.0)")),
    ],
)
def test_attack_fields_are_checked_against_the_gallery(tiny_run, spec, fragments):
    import torch
    from robrank.data.loading import load_split

    labels = load_split("digits", "test", registry=get_registry()).labels
    limit = len(labels) - int(torch.bincount(labels).max())
    line = one_line_error(run_cli("attack", str(tiny_run), "-A", spec, "-m", "1", "-D", "cpu"), *fragments)
    if "exceeds" in line:
        assert f"<={limit}" in line
    # the largest value that fits is accepted
    if spec.startswith("CA"):
        ok = run_cli("attack", str(tiny_run), "-A", f"CA:pm=+:W={limit}:eps=0.03:alpha=0.01:pgditer=1", "-m", "1", "-b", "2", "-D", "cpu")
        assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (lambda a: a[0]["adv"].update(prank=-5), ("attacks[0].adv", "'prank' is -5", "outside its range [0, 100]")),
        (lambda a: a[4]["adv"].update({"Cosine-SIM": float("nan")}), ("attacks[4].adv", "'Cosine-SIM' is nan")),
        (lambda a: a[5]["orig"].update(embshift=float("inf")), ("attacks[5].orig", "'embshift' is inf")),
    ],
)
def test_report_refuses_non_finite_or_out_of_range_metrics_naming_the_field(tiny_run, tmp_path, change, fragments):
    """A hand-edited results file with prank = -5 % reported ERS -88.8 before."""
    source = tiny_run / "swipe-rob28.json"
    if not source.exists():
        assert run_cli("swipe", str(tiny_run), "-p", "rob28", "-m", "1", "-b", "16", "-D", "cpu", "--no-progress").exit_code == 0
    payload = json.loads(source.read_text())
    change(payload["attacks"])
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(payload))
    line = one_line_error(run_cli("report", str(edited)), str(edited), *fragments)
    assert "ERS" not in line


# ----------------------------------------------------------------------------- logs without a terminal


def test_without_a_terminal_progress_is_one_line_per_attack_and_per_epoch(tmp_path):
    """CliRunner's streams are not terminals: no tqdm redraws, one line per attack and per epoch."""
    run_dir = tmp_path / "run"
    result = run_cli("run", *[a for a in TRAIN if a != "--no-progress"], "--epochs", "2", "--max-steps", "4", "--run-dir", str(run_dir),
                     "-p", "rob28", "-m", "1", "--swipe-batch-size", "4")
    assert result.exit_code == 0, result.output
    assert "\r" not in result.output and "it/s" not in result.output and "step/s" not in result.output
    attack_lines = [ln for ln in result.output.splitlines() if ln.startswith("swipe rob28: ")]
    assert len(attack_lines) == 9 and attack_lines[0].startswith("swipe rob28: 1/9 CA:pm=+")
    assert len([ln for ln in result.output.splitlines() if ln.startswith("epoch ")]) == 1  # stopped by --max-steps: one validation
    # `run -m 1` is a partial result: its ERS line says so
    [ers_line] = [ln for ln in result.output.splitlines() if ln.startswith("robustness (rob28): ERS")]
    assert "*" in ers_line and "partial: 4 of 364 queries" in ers_line, ers_line
