"""One plan per run: resume takes the saved plan, conflicts are one-line errors, the run-directory
lock, and components (not the core) decide defaults, -C suffixes and the plain defense."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import robrank
from robrank.errors import ConfigError
from robrank.records import DatasetRecord, DefenseRecord
from test_run import TinyProfile, tiny  # noqa: F401  (the tiny28 profile and its fixture, shared with test_run)
from robrank.plugins import get_registry

SMALL = ("--batch-size", "16", "--max-batches", "1", "--swipe-batch-size", "8", "--no-progress")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _saved(run_dir: Path) -> dict:
    return json.loads((run_dir / "config.json").read_text())


# ------------------------------------------------------------------------------- resume


def test_run_resume_takes_every_setting_from_the_saved_plan(robrank_cli, tmp_path, monkeypatch, tiny):
    """Killed mid-swipe, then the documented ``robrank run --resume --run-dir DIR`` with nothing else."""
    import robrank.attacks as attacks

    run_dir = tmp_path / "kill"
    real = attacks.run_attack
    seen: list[dict] = []

    def dying(*args, **kwargs):
        if len(seen) == 2:
            raise KeyboardInterrupt
        seen.append({"spec": str(args[2].text), "max_batches": kwargs["options"].max_batches, "semantics": kwargs["options"].semantics,
                     "seed": kwargs["options"].seed})
        return real(*args, **kwargs)

    monkeypatch.setattr(attacks, "run_attack", dying)
    first = robrank_cli("run", "--run-dir", str(run_dir), "--epochs", "1", "--max-steps", "2", "--seed", "5",
                        "--profile", "tiny28", "--semantics", "fixed", *SMALL)
    assert first.exit_code == 130, first
    before = _saved(run_dir)
    checkpoint = (run_dir / "checkpoints" / "last.pt").read_bytes()
    metrics = (run_dir / "metrics.jsonl").read_text()

    resumed: list[dict] = []

    def counting(*args, **kwargs):
        resumed.append({"spec": str(args[2].text), "max_batches": kwargs["options"].max_batches, "semantics": kwargs["options"].semantics,
                        "seed": kwargs["options"].seed})
        return real(*args, **kwargs)

    monkeypatch.setattr(attacks, "run_attack", counting)
    second = robrank_cli("run", "--resume", "--run-dir", str(run_dir), "--no-progress")
    assert second.exit_code == 0, second
    # no more training: same checkpoint, same metrics lines, epochs and max_steps as saved
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == checkpoint
    assert (run_dir / "metrics.jsonl").read_text() == metrics
    after = _saved(run_dir)
    assert after["config"] == before["config"] and after["config"]["epochs"] == 1 and after["config"]["max_steps"] == 2
    assert after["run"] == before["run"]
    assert after["run"]["swipe"]["max_batches"] == 1 and after["run"]["swipe"]["semantics"] == "fixed"
    # the swipe continued with the saved settings, attack by attack
    assert len(resumed) == 7 and {r["spec"] for r in resumed}.isdisjoint(r["spec"] for r in seen)
    assert {(r["max_batches"], r["semantics"], r["seed"]) for r in resumed} == {(1, "fixed", 5)}
    swipe = json.loads((run_dir / "swipe-tiny28-fixed.json").read_text())
    assert len(swipe["attacks"]) == 9 and swipe["max_batches"] == 1 and swipe["seed"] == 5


def test_run_resume_refuses_conflicting_settings_and_names_both_values(robrank_cli, tmp_path, tiny):
    run_dir = tmp_path / "run"
    first = robrank_cli("run", "--run-dir", str(run_dir), "--max-steps", "1", "--profile", "tiny28", "--json", *SMALL)
    assert first.exit_code == 0, first
    payload = json.loads(first.stdout)  # --json: the result and nothing else on stdout
    assert payload["run_dir"] == str(run_dir) and payload["steps"] == 1 and payload["profile"] == "tiny28"
    assert 0.0 <= payload["ers"] <= 100.0 and Path(payload["swipe_file"]) == run_dir / "swipe-tiny28.json"
    for args, now, was in (
        (("--lr", "0.5"), "0.5", "0.001"),
        (("--profile", "rob28"), "'rob28'", "'tiny28'"),
        (("--max-batches", "3"), "3", "1"),
        (("--semantics", "fixed"), "'fixed'", "'reference'"),
        (("--seed", "9"), "9", "0"),
        (("--swipe-batch-size", "4"), "4", "8"),
        (("-b", "32"), "32", "16"),  # a runtime option, but the training batch changes what is trained
    ):
        result = robrank_cli("run", "--resume", "--run-dir", str(run_dir), *args, "--no-progress")
        assert result.exit_code == 2, result
        line = result.output.strip()
        assert "\n" not in line and now in line and was in line and "cannot resume" in line, line
    # runtime knobs may change: the device, the workers, the validation batch
    again = robrank_cli("run", "--resume", "--run-dir", str(run_dir), "-D", "cpu", "--num-workers", "0", "--val-batch-size", "7",
                        "--no-progress")
    assert again.exit_code == 0, again


def test_run_resume_of_a_mistyped_directory_refuses(robrank_cli, tmp_path):
    result = robrank_cli("run", "--resume", "--run-dir", str(tmp_path / "typo"), "--no-progress")
    assert result.exit_code == 2, result
    assert "cannot resume" in result.output and "typo" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "typo").exists() and not (tmp_path / "runs").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = robrank_cli("run", "--resume", "--run-dir", str(empty), "--no-progress")
    assert result.exit_code == 2 and "not a robrank run directory" in result.output, result


def test_train_resume_keeps_the_saved_epochs(tmp_path):
    """A resumed TrainConfig that does not mention epochs keeps the run's, instead of the family default (8)."""
    from robrank.plan import plan_training
    from robrank.training import TrainConfig, train

    config = TrainConfig("digits", "lenet", "ptripletN", epochs=2, max_steps=1, batch_size=32, device="cpu", run_dir=str(tmp_path / "r"))
    train(config, progress=False, registry=get_registry())
    plan = plan_training(TrainConfig("digits", "lenet", "ptripletN", run_dir=str(tmp_path / "r")), resume=True, registry=get_registry())
    assert (plan.config.epochs, plan.config.max_steps, plan.config.batch_size, plan.resume) == (2, 1, 32, True)
    with pytest.raises(ConfigError, match=r"--batch-size 64 but the run has 32"):
        plan_training(TrainConfig("digits", "lenet", "ptripletN", batch_size=64, run_dir=str(tmp_path / "r")), resume=True, registry=get_registry())


# --------------------------------------------------------------------------------- lock

_HOLD = """
import sys, time
from robrank.training.rundir import locked
with locked(sys.argv[1], "holder"):
    print("locked", flush=True)
    time.sleep(120)
"""


def _holder(run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_process_on_a_run_directory_refuses_at_once(robrank_cli, tmp_path):
    from robrank.training.rundir import RunLockedError, locked

    run_dir = tmp_path / "busy"
    proc = _holder(run_dir)
    try:
        with pytest.raises(RunLockedError, match=rf"process {proc.pid} "):
            with locked(run_dir):
                pass
        started = time.monotonic()
        result = robrank_cli("train", "-C", "digits:lenet:ptripletN", "--run-dir", str(run_dir), "--max-steps", "1", "--no-progress")
        assert time.monotonic() - started < 30
        assert result.exit_code == 2 and f"in use by process {proc.pid}" in result.output, result
        assert len(result.output.strip().splitlines()) == 1
        assert not (run_dir / "metrics.jsonl").exists()
    finally:
        proc.kill()
        proc.wait()


def test_swipe_refuses_a_locked_run_directory(robrank_cli, untrained_run):
    proc = _holder(untrained_run)
    try:
        swipe = robrank_cli("swipe", str(untrained_run), "-p", "rob28", "-m", "1", "--no-progress")
        assert swipe.exit_code == 2 and f"in use by process {proc.pid}" in swipe.output, swipe
        assert not (untrained_run / "swipe-rob28.json").exists()
    finally:
        proc.kill()
        proc.wait()


def test_a_stale_lock_of_a_killed_process_is_taken_over(tmp_path):
    from robrank.training.rundir import LOCK_FILE, locked

    run_dir = tmp_path / "stale"
    proc = _holder(run_dir)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == proc.pid  # the dead holder is still named
    with locked(run_dir, "taker"):
        assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == os.getpid()
        with locked(run_dir):  # nested in the same process (run = train + swipe): free
            pass


# --------------------------------------------------------------------------- mid-epoch loss


def test_mid_epoch_resume_writes_the_same_metrics_lines(tmp_path):
    from robrank.training import TrainConfig, resolve_config
    from robrank.training.engine import build_parts, fit

    def run(name: str, resume: bool = False, **overrides):
        config = resolve_config(TrainConfig(**{"dataset": "digits", "backbone": "lenet", "loss": "ptripletN", "batch_size": 32,
                                               "num_workers": 0, "device": "cpu", "run_dir": str(tmp_path / name), **overrides}), registry=get_registry())
        parts = build_parts(config, registry=get_registry())
        from robrank.data.base import TensorImageDataset

        parts.train_set = TensorImageDataset(parts.train_set.data[:192], parts.train_set.labels[:192])
        parts.test_set = TensorImageDataset(parts.test_set.data[:100], parts.test_set.labels[:100])
        return fit(config, parts, Path(config.run_dir), resume=resume, progress=False)

    run("full", epochs=2)
    run("cut", epochs=2, max_steps=4)  # stopped after 4 of the epoch's 6 steps
    run("cut", resume=True, epochs=2)

    def lines(name: str) -> list[dict]:
        rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in row.items() if not k.endswith("_seconds")} for row in rows]

    full, cut = lines("full"), lines("cut")
    assert [row["epoch"] for row in full] == [1, 2]
    # the first line of "cut" was written when it stopped (epoch 0, 4 steps); the rest match exactly
    assert cut[0]["step"] == 4 and cut[1:] == full


# ------------------------------------------------------------------- components own meaning


class ThirdParty:
    """A dataset with its own default backbone, a defense with its own -C suffix, a plain defense."""

    @robrank.hookimpl
    def register_datasets(self, register):
        from robrank_plugins.datasets.digits_data import DigitsSource

        register(DatasetRecord(name="digits-b", factory=DigitsSource, summary="digits, c2f2 by default", image_size=28,
                               profile="tiny28", default_backbone="c2f2", default_loss="ptripletE"))

    @robrank.hookimpl
    def register_defenses(self, register):
        from robrank_plugins.defenses.act import ACT

        register(DefenseRecord(name="act-z", factory=ACT, summary="ACT under another name", suffixes={"z": {"pgditer": 3}}))

    @robrank.hookimpl
    def register_profiles(self, register):
        TinyProfile.register_profiles(self, register)


def test_dataset_declares_default_backbone_and_defense_declares_its_suffix(register_plugin):
    from robrank.plan import plan_run
    from robrank.training import parse_triple

    with register_plugin(ThirdParty()) as host:
        triple = parse_triple("digits:lenetz:ptripletN", host.registry)
        assert (triple.backbone, triple.defense, triple.defense_options) == ("lenet", "act-z", {"pgditer": 3})
        plan = plan_run({"dataset": "digits-b"}, {}, registry=host.registry)
        assert (plan.config.backbone, plan.config.loss, plan.swipe.profile) == ("c2f2", "ptripletE", "tiny28")
        assert plan.chosen == {"backbone": "c2f2", "loss": "ptripletE", "defense": "none"}
        assert plan.run_dir.name.startswith("digits-b-c2f2-ptripletE-2")  # the plain defense is not in the name


class Vanilla:
    @robrank.hookimpl
    def register_defenses(self, register):
        from robrank.defenses.base import NoDefense

        register(DefenseRecord(name="vanilla", factory=NoDefense, summary="plain training", plain=True))


def test_the_plain_defense_is_whatever_the_registry_marks_plain(register_plugin):
    """Without the bundled plugins, a third-party plain defense is the default and takes no options."""
    from robrank.testing import registered
    from robrank.training import TrainConfig, resolve_config
    from robrank.training.config import plain_defense

    with registered(Vanilla(), bundled=False) as host:
        assert plain_defense(host.registry) == "vanilla"
    with register_plugin() as host:
        assert plain_defense(host.registry) == "none"
        with pytest.raises(ConfigError, match="need a defense"):
            resolve_config(TrainConfig("digits", "lenet", "ptripletN", defense_options={"eps": 0.1}), host.registry)


# -------------------------------------------------------------------------------- records


def test_backbone_records_say_truly_whether_they_have_batchnorm():
    from robrank.models.backbone import build_backbone
    from robrank.plugins import get_registry

    registry = get_registry()
    for component in registry.components("backbones"):
        record = component.record
        module = build_backbone(record.name, pretrained=None, registry=registry)
        has = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())
        assert has == record.has_batchnorm, record.name


def test_dataset_kinds_are_enforced():
    from robrank.training import TrainConfig, resolve_config

    with pytest.raises(ConfigError, match="offers classification batches"):
        resolve_config(TrainConfig("cifar10", "c2f2", "ptripletN"), registry=get_registry())


def test_details_come_from_the_dataclass_fields():
    import dataclasses

    from robrank.plugins import get_registry

    for kind in ("datasets", "backbones", "losses", "defenses"):
        for component in get_registry().components(kind):
            record = component.record
            # identity, and where a defense's facts are read from (its declaration), are not details
            wanted = {f.name for f in dataclasses.fields(record)} - {"name", "factory", "summary", "aliases", "declared"}
            assert set(record.details()) == wanted, (kind, record.name)
            json.dumps(record.details())


def test_mnist_downloads_use_torchvision_mirrors_and_md5s():
    """The .gz md5s torchvision publishes are the ones robrank had copied by hand (kept here as the reference)."""
    import torchvision.datasets

    from robrank_plugins.datasets.mnist_data import FashionSource, MnistSource

    source = MnistSource(None)
    files = {f.name: f for f in source.files()}
    assert source.gz_md5(files["train-images-idx3-ubyte"]) == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert source.gz_md5(files["t10k-labels-idx1-ubyte"]) == "ec29112dd5afa0611ce80d1b7f02629c"
    assert source.mirror_urls() == tuple(torchvision.datasets.MNIST.mirrors)
    fashion = FashionSource(None)
    ffiles = {f.name: f for f in fashion.files()}
    assert fashion.gz_md5(ffiles["train-images-idx3-ubyte"]) == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert fashion.mirror_urls() == tuple(torchvision.datasets.FashionMNIST.mirrors)


def test_a_dataset_without_declared_defaults_borrows_them_from_one_of_its_size(register_plugin):
    from robrank.plan import plan_run

    class Bare:
        @robrank.hookimpl
        def register_datasets(self, register):
            from robrank_plugins.datasets.digits_data import DigitsSource

            register(DatasetRecord(name="bare28", factory=DigitsSource, summary="declares nothing", image_size=28, profile="rob28"))

    with register_plugin(Bare()) as host:
        plan = plan_run({"dataset": "bare28"}, {}, registry=host.registry)
        # the registered 28x28 grey datasets that are not the quickstart declare c2f2 / ptripletN
        assert (plan.config.backbone, plan.config.loss) == ("c2f2", "ptripletN")
        assert plan.chosen["backbone"] == "c2f2"
