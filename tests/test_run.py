"""``robrank run`` end to end on the embedded digits dataset, its early failures and --resume.

Settings are tiny (a couple of training steps, one 8-query batch per attack) so the whole
file stays within seconds on a CPU; the full-size run is benchmarks/defenses_digits.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import robrank
from robrank.cli.options import parse_key_value as _parse_option
from robrank.records import ProfileRecord
from robrank.plugins import get_registry

SMALL = ("--batch-size", "16", "--max-batches", "1", "--swipe-batch-size", "8", "--no-progress")
#: the rob28 attacks with 2 PGD steps instead of 32, for tests that check plumbing rather than the swipe
TINY = ("--profile", "tiny28")


class TinyProfile:
    @robrank.hookimpl
    def register_profiles(self, register):
        from robrank_plugins.profiles.ers import ERS
        from robrank_plugins.profiles.reference import rob28

        register(ProfileRecord(
            name="tiny28", factory=lambda: [s.replace("pgditer=32", "pgditer=2") for s in rob28()],
            summary="rob28 with 2 PGD steps (tests)", image_size=28, score=ERS,
        ))


@pytest.fixture
def tiny(register_plugin):
    with register_plugin(TinyProfile()) as host:
        yield host


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/ and anything else land in the test's directory
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _run(robrank_cli, *args: str):
    return robrank_cli("run", *args)


def _swipe(run_dir: Path, profile: str = "tiny28") -> dict:
    return json.loads((run_dir / f"swipe-{profile}.json").read_text())


def test_quickstart_defaults_end_to_end(robrank_cli, tmp_path):
    run_dir = tmp_path / "quick"
    result = _run(robrank_cli, "--run-dir", str(run_dir), "--max-steps", "2", *SMALL)
    assert result.exit_code == 0, result.output
    for name in ("config.json", "metrics.jsonl", "checkpoints/last.pt", "swipe-rob28.json", "report.md", "report.txt", "report.html", "ers.png"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "ers.png").read_bytes()[:4] == b"\x89PNG" and "](ers.png)" in (run_dir / "report.md").read_text()
    page = (run_dir / "report.html").read_text()
    assert page.count('<tr class="run') == 2 and 'id="fig-ers"' in page  # raw and rescaled rows of the one run
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["config"]["dataset"] == "digits" and saved["config"]["backbone"] == "lenet"
    assert saved["config"]["loss"] == "ptripletN" and saved["config"]["defense"] == "none"
    assert saved["run"]["quickstart"] is True and saved["run"]["profile"] == "rob28"
    assert saved["run"]["defaults_chosen"] == {"dataset": "digits", "backbone": "lenet", "loss": "ptripletN", "defense": "none"}
    swipe = _swipe(run_dir, "rob28")
    assert len(swipe["attacks"]) == 9 and swipe["finished"] and swipe["max_batches"] == 1
    ers = swipe["ers"]["ers"] if isinstance(swipe["ers"], dict) else swipe["ers"]
    assert 0.0 <= ers <= 100.0
    text = (run_dir / "report.txt").read_text()
    assert f"ERS {ers:.1f}" in text and "Rescaled scores" in text
    assert "ERS" in result.output and "R@1" in result.output
    assert "| ERS |" in (run_dir / "report.md").read_text().replace("  ", " ") or "ERS" in (run_dir / "report.md").read_text()


def test_defense_options_pass_through(robrank_cli, tmp_path, tiny):
    run_dir = tmp_path / "act"
    result = _run(
        robrank_cli, "--plugin", "act", "--run-dir", str(run_dir), "--max-steps", "1", "--pgditer", "2",
        "-o", "miner_margin=loss", "--seed", "3", *TINY, *SMALL,
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((run_dir / "config.json").read_text())
    options = saved["config"]["defense_options"]
    assert saved["config"]["defense"] == "act" and saved["config"]["seed"] == 3
    assert options["pgditer"] == 2 and options["miner_margin"] == "loss"
    assert options["eps"] == pytest.approx(77 / 255) and options["alpha"] == pytest.approx(3 / 255)
    assert _swipe(run_dir)["seed"] == 3
    assert "defense act" in result.output


@pytest.mark.parametrize(
    "args,pattern",
    [
        (("--plugin", "act", "--loss", "pmsC"), "cannot train loss 'multisim'"),
        (("--plugin", "hm", "--loss", "ptripletE"), "metric N only"),
        (("--plugin", "est", "-o", "nosuch=1"), "no option 'nosuch'"),
        (("--plugin", "nosuch",), "unknown defense 'nosuch'"),
        (("-o", "ics=true"), "no defense"),
        (("--dataset", "cifar10",), "classification"),
        (("-C", "digits:lenetp:ptripletN", "--plugin", "est"), "already implies defense 'act'"),
        (("--backbone", "resnet18",), "pick a matching pair"),
    ],
)
def test_bad_combinations_fail_before_training(robrank_cli, tmp_path, args, pattern):
    result = _run(robrank_cli, *args, "--max-steps", "1", *SMALL)
    assert result.exit_code == 2, result.output
    assert pattern in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_missing_dataset_fails_first(robrank_cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run(robrank_cli, "--plugin", "act", "--dataset", "cars", "--data-root", str(empty), "--no-progress")
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and "cars" in line.lower() and str(empty) in line
    assert not (tmp_path / "runs").exists()


def test_resume_after_kill_during_swipe(robrank_cli, tmp_path, monkeypatch, tiny):
    import robrank.attacks as attacks

    run_dir = tmp_path / "swipe-kill"
    real = attacks.run_attack
    calls: list[str] = []

    def dying(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(str(args[2].text))
        return real(*args, **kwargs)

    monkeypatch.setattr(attacks, "run_attack", dying)
    first = _run(robrank_cli, "--run-dir", str(run_dir), "--max-steps", "2", *TINY, *SMALL)
    assert first.exit_code == 130, first.output
    assert len(_swipe(run_dir)["attacks"]) == 3 and not (run_dir / "report.txt").exists()
    checkpoint = (run_dir / "checkpoints" / "last.pt").read_bytes()

    resumed: list[str] = []

    def counting(*args, **kwargs):
        resumed.append(str(args[2].text))
        return real(*args, **kwargs)

    monkeypatch.setattr(attacks, "run_attack", counting)
    second = _run(robrank_cli, "--resume", "--run-dir", str(run_dir), "--max-steps", "2", *TINY, *SMALL)
    assert second.exit_code == 0, second.output
    assert len(resumed) == 6 and not set(resumed) & set(calls)  # only the unfinished attacks ran
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == checkpoint  # training was not redone
    assert len(_swipe(run_dir)["attacks"]) == 9 and (run_dir / "report.txt").is_file()


def test_resume_after_kill_during_training(robrank_cli, tmp_path, monkeypatch, tiny):
    """A crash at step 5 with a checkpoint every 2 steps; --resume ends where an uninterrupted run ends."""
    from robrank.defenses.base import NoDefense
    from robrank.training import TrainConfig, train

    real = NoDefense.loss
    steps = [0]

    def crashing(self, *args):
        steps[0] += 1
        if steps[0] == 5:
            raise RuntimeError("killed")
        return real(self, *args)

    run_dir = tmp_path / "train-kill"
    common = ("--epochs", "1", "--checkpoint-every", "2", "--batch-size", "128", *TINY)
    monkeypatch.setattr(NoDefense, "loss", crashing)
    first = _run(robrank_cli, "--run-dir", str(run_dir), *common, "--max-batches", "1", "--swipe-batch-size", "8", "--no-progress")
    assert first.exit_code != 0 and isinstance(first.exception, RuntimeError)
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["step"] == 4
    monkeypatch.setattr(NoDefense, "loss", real)
    second = _run(robrank_cli, "--resume", "--run-dir", str(run_dir), *common, "--max-batches", "1", "--swipe-batch-size", "8", "--no-progress")
    assert second.exit_code == 0, second.output
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 1 and metrics[0]["step"] == 12  # ceil(1433 / 128) steps, one validation
    reference = train(
        TrainConfig(dataset="digits", backbone="lenet", loss="ptripletN", epochs=1, batch_size=128, run_dir=str(tmp_path / "ref")),
        progress=False, registry=get_registry()
    )
    assert reference.metrics["R@1"] == pytest.approx(metrics[0]["R@1"], abs=1e-9)
    assert "ERS" in second.output


def test_parse_option():
    assert _parse_option("ics=true") == ("ics", True)
    assert _parse_option("ics-lambda=0.05") == ("ics_lambda", 0.05)
    assert _parse_option("src=softhard") == ("src", "softhard")
    assert _parse_option("pgditer=8") == ("pgditer", 8)


def test_resume_with_more_epochs_extends_a_finished_run_into_a_new_results_file(robrank_cli, tmp_path, tiny):
    """Issue 23: the extra epoch is trained, then swiped into its own file; the earlier results stay as they were."""
    run_dir = tmp_path / "extend"
    args = ("--run-dir", str(run_dir), *TINY, "--batch-size", "16", "--max-batches", "1", "--swipe-batch-size", "4", "--no-progress")
    first = _run(robrank_cli, *args, "--epochs", "1")
    assert first.exit_code == 0, first.output
    old = (run_dir / "swipe-tiny28.json").read_bytes()
    assert json.loads(old)["model"]["epoch"] == 1
    more = _run(robrank_cli, "--resume", *args, "--epochs", "2")
    assert more.exit_code == 0, more.output
    assert "--output" not in more.output and "--restart" not in more.output
    assert "swipe-tiny28.json holds the swipe of an earlier checkpoint and is kept" in more.output
    assert (run_dir / "swipe-tiny28.json").read_bytes() == old  # never replaced
    new = json.loads((run_dir / "swipe-tiny28-epoch2.json").read_text())
    assert new["model"]["epoch"] == 2 and new["finished"] and len(new["attacks"]) == 9
    again = _run(robrank_cli, "--resume", *args, "--epochs", "2")  # nothing left to do: both files stay
    assert again.exit_code == 0, again.output
    assert (run_dir / "swipe-tiny28.json").read_bytes() == old
    assert sorted(p.name for p in run_dir.glob("swipe-*.json")) == ["swipe-tiny28-epoch2.json", "swipe-tiny28.json"]
