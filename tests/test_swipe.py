"""The swipe runner: one model load, one gallery, atomic per-attack saves, safe resume.

Most tests drive the runner through a stand-in :class:`SwipeBackend` (fake model loading and
attacks with known summaries), which isolates the bookkeeping; the end-to-end test at the
bottom runs the real attacks on a tiny model when they are installed.
"""
from __future__ import annotations

import copy
import json
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from robrank.cli import cli
from robrank.errors import ConfigError, UnknownNameError
from robrank_plugins.profiles.ers import ers as ers_score, raw_scores
from robrank.swipe.runner import SwipeBackend, SwipeResumeError, swipe
from robrank.swipe.schema import SwipeFileError, load_results, validate
from robrank.plugins import get_registry

ADV = {  # adversarial summaries whose ERS is the hand-computed 35.4 of test_ers.py
    ("CA", "+"): {"prank": 10.0},
    ("CA", "-"): {"prank": 20.0},
    ("QA", "+"): {"prank": 30.0},
    ("QA", "-"): {"prank": 40.0},
    ("TMA", ""): {"Cosine-SIM": 0.5},
    ("ES", ""): {"r@1": 7.0, "r@10": 30.0, "r@100": 60.0, "loss": -1.0, "embshift": 1.0},
    ("LTM", ""): {"r@1": 8.0},
    ("GTM", ""): {"r@1": 9.0},
    ("GTT", ""): {"ID-Retain@1": 2.0, "retain@4": 10.0},
}


@dataclass
class FakeResult:
    spec: str
    orig: dict
    adv: dict
    count: int = 16
    seconds: float = 0.01

    def as_dict(self):
        return {"spec": self.spec, "orig": self.orig, "adv": self.adv, "count": self.count, "seconds": self.seconds}


@dataclass
class Calls:
    load_run: int = 0
    gallery: int = 0
    attacks: list = field(default_factory=list)
    kwargs: list = field(default_factory=list)


def fake_parse(text):
    kind = text.split(":")[0]
    pm = "+" if ":pm=+" in text else "-" if ":pm=-" in text else ""
    return types.SimpleNamespace(type=kind, text=text, pm=pm)


def make_backend(run_dir: Path, calls: Calls, crash_at: int | None = None) -> SwipeBackend:
    checkpoint = run_dir / "checkpoints" / "last.pt"

    def load_run(path, device="cpu"):
        calls.load_run += 1
        return types.SimpleNamespace(
            model=object(),
            config={"dataset": "digits", "backbone": "c2f2", "loss": "ptripletN"},
            dataset="digits",
            metric="N",
            checkpoint=checkpoint,
            run_dir=run_dir,
            epoch=3,
            step=120,
        )

    def load_split(name, split, data_root=None, augment=False):
        assert (name, split) == ("digits", "test")
        return list(range(40))

    def compute_gallery(model, dataset, batch_size, device):
        calls.gallery += 1
        return "gallery"

    def run_attack(model, dataset, spec, **kwargs):
        assert kwargs["gallery"] == "gallery", "every attack must share the swipe's gallery"
        if crash_at is not None and len(calls.attacks) + 1 == crash_at:
            raise KeyboardInterrupt
        calls.attacks.append(spec.text)
        calls.kwargs.append(kwargs)
        adv = ADV.get((spec.type, spec.pm), {"prank": 30.0, "GTprank": 10.0})
        return FakeResult(spec.text, {"prank": 50.0, "r@1": 90.0}, dict(adv))

    return SwipeBackend(load_run=load_run, load_split=load_split, parse_spec=fake_parse, compute_gallery=compute_gallery, run_attack=run_attack)


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "mnist-c2f2-ptripletN"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"weights v1")
    return run


def test_full_swipe_loads_once_and_writes_a_valid_file(run_dir):
    calls = Calls()
    out = swipe(run_dir, "rob28", backend=make_backend(run_dir, calls), progress=False, max_batches=1, batch_size=8, registry=get_registry())
    assert out == run_dir / "swipe-rob28.json"
    assert calls.load_run == 1 and calls.gallery == 1 and len(calls.attacks) == 9
    assert {kw["options"].semantics for kw in calls.kwargs} == {"reference"}
    assert {(kw["options"].max_batches, kw["options"].batch_size, kw["options"].seed) for kw in calls.kwargs} == {(1, 8, 0)}
    payload = load_results(out, registry=get_registry())
    assert payload["planned"] == calls.attacks
    assert [a["spec"] for a in payload["attacks"]] == calls.attacks
    assert payload["attacks"][0]["type"] == "CA" and payload["attacks"][0]["count"] == 16
    assert payload["model"]["epoch"] == 3 and payload["model"]["step"] == 120
    assert payload["model"]["config"]["backbone"] == "c2f2" and payload["queries"] == 40
    assert payload["finished"] is not None and payload["ers_profile"] is True
    assert payload["ers"]["ers"] == pytest.approx(35.4)
    assert payload["ers"]["raw"]["esr"] == pytest.approx(7.0)


def test_killed_swipe_resumes_without_rerunning_finished_attacks(run_dir):
    first = Calls()
    with pytest.raises(KeyboardInterrupt):
        swipe(run_dir, "rob28", backend=make_backend(run_dir, first, crash_at=3), progress=False, registry=get_registry())
    out = run_dir / "swipe-rob28.json"
    partial = load_results(out, registry=get_registry())  # the file on disk is complete JSON, valid, and unfinished
    assert [a["spec"] for a in partial["attacks"]] == first.attacks and len(first.attacks) == 2
    assert partial["finished"] is None and "ers" not in partial

    second = Calls()
    swipe(run_dir, "rob28", backend=make_backend(run_dir, second), progress=False, registry=get_registry())
    assert not set(second.attacks) & set(first.attacks)
    assert first.attacks + second.attacks == partial["planned"]
    final = load_results(out, registry=get_registry())
    validate(final, registry=get_registry())
    assert [a["spec"] for a in final["attacks"]] == final["planned"]
    assert final["started"] == partial["started"] and final["finished"] is not None
    assert final["ers"]["ers"] == pytest.approx(35.4)
    assert final["timings"]["total_seconds"] >= partial["timings"]["total_seconds"]


def test_redo_recomputes_only_the_named_attack(run_dir):
    out = swipe(run_dir, "rob28", backend=make_backend(run_dir, Calls()), progress=False, registry=get_registry())
    before = load_results(out, registry=get_registry())
    again = Calls()
    swipe(run_dir, "rob28", backend=make_backend(run_dir, again), progress=False, redo=["ES"], registry=get_registry())
    after = load_results(out, registry=get_registry())
    validate(after, registry=get_registry())
    es = [s for s in before["planned"] if s.startswith("ES:")]
    assert again.attacks == es  # only ES ran again
    assert [a["spec"] for a in after["attacks"]] == after["planned"]  # back in profile order
    assert [r["spec"] for r in after["redone"]] == es
    kept = {a["spec"]: a for a in before["attacks"] if a["spec"] not in es}
    assert all(a == kept[a["spec"]] for a in after["attacks"] if a["spec"] in kept)
    assert after["finished"] is not None and after["ers"]["ers"] == pytest.approx(before["ers"]["ers"])
    with pytest.raises(ConfigError, match="--redo 'XX'.*no such attack.*ES"):
        swipe(run_dir, "rob28", backend=make_backend(run_dir, Calls()), progress=False, redo=["XX"], registry=get_registry())


def test_finished_file_is_left_alone(run_dir):
    out = swipe(run_dir, "rob28", backend=make_backend(run_dir, Calls()), progress=False, registry=get_registry())
    before = out.read_text()
    again = Calls()
    swipe(run_dir, "rob28", backend=make_backend(run_dir, again), progress=False, registry=get_registry())
    assert again.attacks == [] and again.gallery == 0
    assert out.read_text() == before


@pytest.mark.parametrize(
    ("change", "field"),
    [({"seed": 1}, "seed"), ({"semantics": "fixed", "output": "same"}, "semantics"), ({"max_batches": 2}, "max_batches")],
)
def test_resume_refuses_other_settings(run_dir, change, field):
    with pytest.raises(KeyboardInterrupt):
        swipe(run_dir, "rob28", backend=make_backend(run_dir, Calls(), crash_at=2), progress=False, registry=get_registry())
    out = run_dir / "swipe-rob28.json"
    before = out.read_text()
    kwargs = dict(change)
    if kwargs.get("output") == "same":
        kwargs["output"] = out
    with pytest.raises(SwipeResumeError, match=f"{field}=.*--output.*--restart") as info:
        swipe(run_dir, "rob28", backend=make_backend(run_dir, Calls()), progress=False, registry=get_registry(), **kwargs)
    assert "\n" not in str(info.value)
    assert out.read_text() == before


def test_batch_size_matters_for_resume_only_with_max_batches(run_dir):
    with pytest.raises(KeyboardInterrupt):
        swipe(run_dir, "rob28", backend=make_backend(run_dir, Calls(), crash_at=2), progress=False, max_batches=1, batch_size=8, registry=get_registry())
    with pytest.raises(SwipeResumeError, match="batch_size=8, not 4"):
        swipe(run_dir, "rob28", backend=make_backend(run_dir, Calls()), progress=False, max_batches=1, batch_size=4, registry=get_registry())
    with pytest.raises(SwipeResumeError, match="max_batches=1, not None"):
        swipe(run_dir, "rob28", backend=make_backend(run_dir, Calls()), progress=False, batch_size=8, registry=get_registry())
    other = run_dir / "whole.json"
    with pytest.raises(KeyboardInterrupt):
        swipe(run_dir, "rob28", output=other, backend=make_backend(run_dir, Calls(), crash_at=2), progress=False, batch_size=8, registry=get_registry())
    calls = Calls()
    swipe(run_dir, "rob28", output=other, backend=make_backend(run_dir, calls), progress=False, batch_size=32, registry=get_registry())
    assert len(calls.attacks) == 8  # whole split: the batch size is only a speed knob


def test_resume_refuses_another_checkpoint_and_restart_overwrites(run_dir):
    with pytest.raises(KeyboardInterrupt):
        swipe(run_dir, "rob28", backend=make_backend(run_dir, Calls(), crash_at=4), progress=False, registry=get_registry())
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"weights v2, trained further")
    with pytest.raises(SwipeResumeError, match="another checkpoint"):
        swipe(run_dir, "rob28", backend=make_backend(run_dir, Calls()), progress=False, registry=get_registry())
    calls = Calls()
    out = swipe(run_dir, "rob28", backend=make_backend(run_dir, calls), progress=False, restart=True, registry=get_registry())
    assert len(calls.attacks) == 9
    assert load_results(out, registry=get_registry())["model"]["sha256"] != ""


def test_corrupt_results_file_is_a_one_line_error(run_dir):
    (run_dir / "swipe-rob28.json").write_text('{"schema": "robrank-swipe", "schema_ver')
    with pytest.raises(SwipeResumeError, match="not valid JSON.*--restart"):
        swipe(run_dir, "rob28", backend=make_backend(run_dir, Calls()), progress=False, registry=get_registry())


def test_fixed_semantics_get_their_own_default_file(run_dir):
    calls = Calls()
    out = swipe(run_dir, "rob28", backend=make_backend(run_dir, calls), progress=False, semantics="fixed", registry=get_registry())
    assert out.name == "swipe-rob28-fixed.json"
    assert {kw["options"].semantics for kw in calls.kwargs} == {"fixed"}
    assert load_results(out, registry=get_registry())["semantics"] == "fixed"


def test_checkpoint_file_gets_a_results_file_next_to_it(run_dir):
    ckpt = run_dir / "checkpoints" / "last.pt"
    out = swipe(ckpt, "pami28", backend=make_backend(run_dir, Calls()), progress=False, max_batches=1, registry=get_registry())
    assert out == ckpt.with_name("last.pt.swipe-pami28.json")
    payload = load_results(out, registry=get_registry())
    assert len(payload["attacks"]) == 32 and "ers" not in payload and payload["ers_profile"] is False


def test_bad_arguments(run_dir):
    backend = make_backend(run_dir, Calls())
    with pytest.raises(UnknownNameError, match="unknown profile 'rob99'; did you mean 'rob28'\\?; registered: .*rob224, .*rob28"):
        swipe(run_dir, "rob99", backend=backend, registry=get_registry())
    with pytest.raises(ConfigError, match="semantics"):
        swipe(run_dir, "rob28", backend=backend, semantics="sloppy", registry=get_registry())
    with pytest.raises(ConfigError, match="batch size"):
        swipe(run_dir, "rob28", backend=backend, batch_size=0, registry=get_registry())


# ---- the schema checker -------------------------------------------------------------------


@pytest.fixture
def good_payload(run_dir):
    out = swipe(run_dir, "rob28", backend=make_backend(run_dir, Calls()), progress=False, registry=get_registry())
    return json.loads(out.read_text())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("profile"), "field 'profile' is missing"),
        (lambda p: p.update(schema="other"), "not a robrank swipe results file"),
        (lambda p: p.update(schema_version=4), "schema_version 4 is not supported"),
        (lambda p: p.pop("coverage"), "field 'coverage' is missing"),
        (lambda p: p["coverage"].update(partial=5), "coverage: field 'partial' must be string or null"),
        (lambda p: p["attacks"][3].update(count=10**6), r"attacks\[3\]: count 1000000 is outside"),
        (lambda p: p["attacks"][1]["orig"].update(prank=150.0), r"attacks\[1\].orig: metric 'prank' is 150, outside its range"),
        # LTM's top-1 match is a fraction (ES's recalls are percentages): each attack declares its own ranges
        (lambda p: p["attacks"][6]["adv"].update({"r@1": 101.5}), r"attacks\[6\].adv: metric 'r@1' is 101.5, outside its range \[0, 100\]"),
        (lambda p: p["attacks"][5]["adv"].update({"r@1": 100.5}), r"attacks\[5\].adv: metric 'r@1' is 100.5, outside its range \[0, 100\]"),
        (lambda p: p["attacks"][8]["adv"].update({"retain@4": -0.5}), r"attacks\[8\].adv: metric 'retain@4' is -0.5"),
        (lambda p: p["ers"].update(ers=float("nan")), "ers.ers is nan"),
        (lambda p: p.update(seed="0"), "field 'seed' must be integer"),
        (lambda p: p.update(max_batches=True), "field 'max_batches' must be integer or null"),
        (lambda p: p.update(semantics="loose"), "semantics must be one of"),
        (lambda p: p["model"].pop("sha256"), "model: field 'sha256' is missing"),
        (lambda p: p["versions"].pop("torch"), "versions.torch"),
        (lambda p: p["timings"].update(total_seconds=-1), "timings.total_seconds"),
        (lambda p: p["attacks"][2]["adv"].update(prank="high"), r"attacks\[2\].adv: metric 'prank' must be a number"),
        (lambda p: p["attacks"].append(copy.deepcopy(p["attacks"][0])), "appears twice"),
        (lambda p: p["attacks"][0].update(spec="CA:pm=+:W=9"), "not in the profile's planned list"),
        (lambda p: p["attacks"].pop(), "marked finished but only 8 of 9"),
        (lambda p: (p["attacks"].pop(), p.update(finished=None)), "has an 'ers' block"),
    ],
)
def test_schema_checker_names_the_bad_field(good_payload, mutate, message):
    validate(good_payload, registry=get_registry())
    mutate(good_payload)
    with pytest.raises(SwipeFileError, match=message):
        validate(good_payload, registry=get_registry())



def test_ranges_come_from_the_attack_and_an_uninstalled_attacks_keys_only_need_to_be_finite(good_payload):
    assert good_payload["attacks"][6]["type"] == "LTM" and good_payload["attacks"][5]["adv"]["r@1"] > 1  # ES: percent
    good_payload["attacks"][0]["adv"]["prank"] = 70.0
    good_payload["attacks"][0].pop("sums", None)  # hand-edited averages without sums or a score to agree with
    good_payload.pop("ers", None)
    validate(good_payload, registry=get_registry())
    with pytest.raises(SwipeFileError, match=r"'prank' is 70, outside its range \[0, 50\]"):
        validate(good_payload, bounds_of=lambda kind: {"prank": (0.0, 50.0)}, registry=get_registry())
    good_payload["attacks"][0].update(type="NOT-INSTALLED")
    good_payload["attacks"][0]["adv"].update(prank=7.0)
    validate(good_payload, registry=get_registry())  # nobody here knows its keys' ranges
    good_payload["attacks"][0]["adv"].update(embshift=-1.0)  # but the engine's own key is always bounded
    with pytest.raises(SwipeFileError, match=r"'embshift' is -1, outside its range \[0, inf\]"):
        validate(good_payload, registry=get_registry())

# ---- the CLI -------------------------------------------------------------------------------


def test_cli_swipe_prints_the_report(run_dir, monkeypatch):
    calls = Calls()
    monkeypatch.setattr(SwipeBackend, "default", classmethod(lambda cls, registry: make_backend(run_dir, calls)))
    result = CliRunner().invoke(cli, ["swipe", str(run_dir), "-p", "rob28", "-m", "1", "-b", "8", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"results: {run_dir / 'swipe-rob28.json'}" in result.output
    assert "ERS" in result.output and "35.4" in result.output
    assert calls.kwargs[0]["options"].max_batches == 1 and calls.kwargs[0]["options"].batch_size == 8


def test_cli_swipe_unknown_profile(run_dir):
    result = CliRunner().invoke(cli, ["swipe", str(run_dir), "-p", "rob99"])
    assert result.exit_code == 2
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1 and "unknown profile 'rob99'" in lines[0] and "rob28" in lines[0]


def test_cli_swipe_interrupt_says_how_to_continue(run_dir, monkeypatch):
    monkeypatch.setattr(SwipeBackend, "default", classmethod(lambda cls, registry: make_backend(run_dir, Calls(), crash_at=5)))
    result = CliRunner().invoke(cli, ["swipe", str(run_dir), "-p", "rob28", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 130
    assert "rerun the same command" in result.output
    assert len(load_results(run_dir / "swipe-rob28.json", registry=get_registry())["attacks"]) == 4


# ---- end to end: real attacks, a tiny random C2F2 on digits ------------------------------


def test_end_to_end_rob28_on_digits_with_a_kill_and_resume(untrained_run, one_thread):
    pytest.importorskip("robrank.attacks")
    from dataclasses import replace

    real = SwipeBackend.default(get_registry())
    calls = []

    def crashing(model, dataset, spec, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(spec.text)
        return real.run_attack(model, dataset, spec, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        swipe(untrained_run, "rob28", max_batches=1, batch_size=2, progress=False, backend=replace(real, run_attack=crashing), registry=get_registry())
    out = untrained_run / "swipe-rob28.json"
    assert [a["spec"] for a in load_results(out, registry=get_registry())["attacks"]] == calls

    rerun = []

    def counting(model, dataset, spec, **kwargs):
        rerun.append(spec.text)
        return real.run_attack(model, dataset, spec, **kwargs)

    swipe(untrained_run, "rob28", max_batches=1, batch_size=2, progress=False, backend=replace(real, run_attack=counting), registry=get_registry())
    assert len(rerun) == 7 and not set(rerun) & set(calls)
    payload = load_results(out, registry=get_registry())
    assert [a["type"] for a in payload["attacks"]] == ["CA", "CA", "QA", "QA", "TMA", "ES", "LTM", "GTM", "GTT"]
    assert all(a["count"] == 2 for a in payload["attacks"])
    assert payload["model"]["step"] == 7 and payload["model"]["run_dir"] == str(untrained_run) and payload["queries"] == 364
    score = payload["ers"]
    assert score["ers"] == pytest.approx(ers_score(raw_scores(payload["attacks"])))
    for key in ("cap", "cam", "qap", "qam"):  # percentiles, in percent
        assert 0.0 <= score["raw"][key] <= 100.0
    assert -1.0 <= score["raw"]["tma"] <= 1.0 and 0.0 <= score["raw"]["esd"] <= 2.0
    text = CliRunner().invoke(cli, ["report", str(out)]).output
    assert "digits-lenet-ptripletN/rob28" in text and f"{score['ers']:.1f}" in text

    # an uninterrupted swipe gives the same numbers, before and after the resume point
    fresh = []

    def stop_after_three(model, dataset, spec, **kwargs):
        if len(fresh) == 3:
            raise KeyboardInterrupt
        fresh.append(spec.text)
        return real.run_attack(model, dataset, spec, **kwargs)

    other = untrained_run / "again.json"
    with pytest.raises(KeyboardInterrupt):
        swipe(untrained_run, "rob28", output=other, max_batches=1, batch_size=2, progress=False, backend=replace(real, run_attack=stop_after_three), registry=get_registry())
    for again, first in zip(load_results(other, registry=get_registry())["attacks"], payload["attacks"][:3]):
        assert again["spec"] == first["spec"]
        assert again["adv"] == pytest.approx(first["adv"], rel=1e-6) and again["orig"] == pytest.approx(first["orig"], rel=1e-6)
