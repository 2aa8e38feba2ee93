"""Issue 23's rows that are not about ties, units or results files: nothing a user does may
silently change the science or end in a traceback.

Each test drives one row the way a user meets it (the CLI in-process, or the Python API):
the API's attack budget, its input checks, ``--save-adversarial`` never replacing results,
OS write errors, plugin factories and ``--model`` callables that misbehave, names that differ
only in case, ``run --resume`` past a finished run, ``--max-queries``, and attacks whose
steps cannot reach their eps.
"""
from __future__ import annotations

import json
import warnings

import pytest
import torch

from robrank.cli import cli

from test_user_errors import one_line_error, run_cli
from robrank.plugins import get_registry

# --------------------------------------------------------------------- steps short of eps


def test_an_attack_whose_steps_cannot_reach_eps_says_so_on_the_cli(tiny_run):
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["attack", str(tiny_run), "-A", "ES:eps=0.3:alpha=0.01:pgditer=2", "-m", "1", "-b", "4",
                                      "-D", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # stdout stays machine-readable: the warning is on stderr
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    assert "reach at most 0.02" in line and "eps=0.3" in line and "pgditer>=30" in line and "--random-start" in line
    for ok in ("ES:eps=0.3:alpha=0.01:pgditer=30", "ES:eps=0.3:alpha=0.01:pgditer=1"):  # reaches; FGSM steps by eps
        quiet = CliRunner().invoke(cli, ["attack", str(tiny_run), "-A", ok, "-m", "1", "-b", "2", "-D", "cpu", "--json"])
        assert quiet.exit_code == 0 and "warning" not in quiet.stderr, quiet.output
    started = CliRunner().invoke(cli, ["attack", str(tiny_run), "-A", "ES:eps=0.3:alpha=0.01:pgditer=2", "--random-start", "-m", "1",
                                       "-b", "2", "-D", "cpu", "--json"])
    assert started.exit_code == 0 and "warning" not in started.stderr


def test_short_steps_rule():
    from robrank.attacks import build_attack, parse_spec
    from robrank.attacks.reach import reach, short_steps

    def atk(spec, **kw):
        return build_attack(parse_spec(spec, registry=get_registry()), registry=get_registry(), **kw)

    assert reach(atk("PGD:eps=0.3:alpha=0.01:pgditer=24")) == pytest.approx(0.24)
    assert short_steps(atk("PGD:eps=0.3:alpha=0.01:pgditer=24"), "x") is not None
    assert short_steps(atk("PGD:eps=0.3:alpha=0.01:pgditer=30"), "x") is None
    assert short_steps(atk("CA:pm=+:W=1:eps=0.30196:alpha=0.011764:pgditer=32"), "x") is None  # the ERS profiles reach
    assert short_steps(atk("PGD:eps=0.3:alpha=0.01:pgditer=24", random_start=True), "x") is None
    assert short_steps(atk("ES:eps=0.3:alpha=0.001:pgditer=5:opt=apgd"), "x") is None
    assert "pgditer>=" in short_steps(atk("ES:eps=0.3:pgditer=4:nes=1"), "x")  # NES: 5 steps of 3/255
    assert short_steps(atk("ES:eps=0.30196:pgditer=32:nes=1"), "x") is None  # 33 x 3/255 = 0.388
    assert short_steps(atk("ES:eps=2:alpha=0.5:pgditer=3:norm=2"), "x") is not None  # L2: 1.5 < 2


def test_the_bundled_profiles_reach_their_eps():
    from robrank.attacks import build_attack, parse_spec
    from robrank.attacks.reach import short_steps
    from robrank.plugins import get_registry

    for component in get_registry().components("profiles"):
        for spec in component.record.factory():
            assert short_steps(build_attack(parse_spec(spec, registry=get_registry()), registry=get_registry()), spec) is None, (component.record.name, spec)


def test_the_api_warns_when_steps_cannot_reach_eps():
    from torch import nn

    import robrank
    from robrank.attacks.reach import ShortStepsWarning

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 8))
    images, labels = torch.rand(12, 1, 28, 28), torch.arange(12) % 3
    with pytest.warns(ShortStepsWarning, match="reach at most 0.24"):
        robrank.attack("ES", net, gallery=(images, labels), metric="N", eps=0.3, alpha=0.01, pgditer=24)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShortStepsWarning)
        robrank.attack("ES", net, gallery=(images, labels), metric="N", eps=0.3, alpha=0.01, pgditer=30)


#: the docs' deliberate counter-examples: the one attacks.md explains, and classification.md's
#: quick measurements, which say they are results at a smaller radius
SHORT_ON_PURPOSE = {"PGD:eps=0.3:alpha=0.01:pgditer=24", "PGD:eps=0.3:alpha=0.02:pgditer=8", "PGD:eps=0.3:pgditer=4:nes=1"}


def test_the_readme_and_docs_examples_reach_the_eps_they_print():
    import re
    from pathlib import Path

    from robrank.attacks import build_attack, parse_spec
    from robrank.attacks.reach import short_steps
    from robrank.errors import SpecError

    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"\b[A-Z]+(?::[A-Za-z]+=[^:\s`\"',)]+)*:eps=[^\s`\"',)]+")
    checked = 0
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for spec in sorted(set(pattern.findall(doc.read_text()))):
            if spec in SHORT_ON_PURPOSE:
                continue
            try:
                attack = build_attack(parse_spec(spec, registry=get_registry()), registry=get_registry())
            except SpecError:  # a plugin's attack (MICA) or an example of a bad spec
                continue
            checked += 1
            assert short_steps(attack, spec) is None, f"{doc.name}: {spec}"
    assert checked > 10


# --------------------------------------------------------------------- names and case


class _CasePlugin:
    """A third-party backbone called ``LeNet``, beside the bundled ``lenet``."""

    import robrank as _robrank

    @staticmethod
    @_robrank.hookimpl
    def register_backbones(register):
        from torch import nn

        from robrank.records import BackboneRecord

        register(BackboneRecord(name="LeNet", factory=lambda *a, **k: nn.Flatten(), summary="a look-alike"))


def test_a_name_differing_only_in_case_from_a_bundled_one_is_a_collision(register_plugin):
    from click.testing import CliRunner

    with pytest.warns(UserWarning, match="'LeNet' \\(the same as 'lenet' but for case\\) is already robrank's own"):
        with register_plugin(_CasePlugin()) as host:
            result = CliRunner().invoke(cli, ["list", "backbones", "--json"])
            assert host.registry.get("backbones", "LENET").name == "lenet"  # the bundled one is kept
    payload = json.loads(result.stdout)
    [failure] = payload["failures"]
    assert failure["stage"] == "collision" and "but for case" in failure["error"]
    assert [c["name"] for c in payload["components"]["backbones"]].count("lenet") == 1
    assert "LeNet" not in [c["name"] for c in payload["components"]["backbones"]]


def test_a_wrong_case_name_resolves_and_a_misspelt_one_gets_a_did_you_mean(tmp_path):
    from robrank.plugins import get_registry

    assert get_registry().get("backbones", "LENET").name == "lenet"
    assert get_registry().get("datasets", "Digits").name == "digits"
    line = one_line_error(run_cli("train", "--dataset", "digits", "--backbone", "LENNET", "--loss", "ptripletN",
                                  "--run-dir", str(tmp_path / "r")), "unknown backbone 'LENNET'", "did you mean 'lenet'")
    assert line.index("did you mean") < line.index("registered:")  # the fix comes before the long list
    one_line_error(run_cli("attack", str(tmp_path), "-A", "Esx:eps=0.1"), "unknown attack type")


# --------------------------------------------------------------------- factories and --model callables


class _BadBackbones:
    """Backbones whose factories misbehave: a non-Module, a crash, a sys.exit."""

    import robrank as _robrank

    @staticmethod
    @_robrank.hookimpl
    def register_backbones(register):
        import sys

        from robrank.records import BackboneRecord

        def exits(*a, **k):
            sys.exit(7)

        def raises(*a, **k):
            raise RuntimeError("out of cheese")

        register(BackboneRecord(name="notamodule", factory=lambda *a, **k: "a string", summary="returns a str"))
        register(BackboneRecord(name="exitnet", factory=exits, summary="exits"))
        register(BackboneRecord(name="crashnet", factory=raises, summary="raises"))


@pytest.mark.parametrize("backbone, fragments", [
    ("notamodule", ("backbone 'notamodule'", "returned str, not a torch.nn.Module")),
    ("exitnet", ("backbone 'exitnet'", "sys.exit(7)")),
    ("crashnet", ("backbone 'crashnet'", "RuntimeError: out of cheese")),
])
def test_a_backbone_factory_that_misbehaves_is_one_line_naming_it(backbone, fragments, register_plugin, tmp_path):
    with register_plugin(_BadBackbones()):
        result = run_cli("train", "--dataset", "digits", "--backbone", backbone, "--loss", "ptripletN", "--max-steps", "1",
                         "--device", "cpu", "--num-workers", "0", "--run-dir", str(tmp_path / "run"))
    one_line_error(result, *fragments)


@pytest.mark.parametrize("body, fragments", [
    ("def make():\n    import sys\n    sys.exit(7)\n", ("make() failed", "it called sys.exit(7)")),
    ("def make():\n    return 42\n", ("make() returned int, not an nn.Module",)),
    ("def make():\n    raise ValueError('no weights here')\n", ("make() failed", "ValueError: no weights here")),
    ("import sys\nsys.exit(3)\ndef make():\n    pass\n", ("importing", "it called sys.exit(3)")),
])
def test_a_model_callable_that_misbehaves_is_one_line_naming_it(body, fragments, tmp_path):
    source = tmp_path / "userdef.py"
    source.write_text(body)
    for command in ("eval", "attack"):
        extra = ("-A", "ES") if command == "attack" else ()
        one_line_error(run_cli(command, "--model", f"{source}:make", "--metric", "N", "--dataset", "digits", *extra),
                       "--model", "userdef.py:make", *fragments)


# --------------------------------------------------------------------- the API's budget and inputs


def _net():
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 24 * 24, 16))


def test_the_api_takes_the_budget_from_the_datasets_profile_and_says_so():
    import robrank
    from robrank.attacks import DEFAULT_EPS

    atk = robrank.attack("QA:pm=+:M=1", _net(), gallery="digits", metric="N")
    # digits' profile is rob28: the numbers robrank swipe uses, not the class defaults 4/255 and 24
    assert atk.budget == {"eps": pytest.approx(0.30196), "alpha": pytest.approx(0.011764), "pgditer": 32}
    assert atk.budget["eps"] != pytest.approx(DEFAULT_EPS)
    assert "budget eps=0.30196, alpha=0.011764, pgditer=32 (eps, alpha, pgditer from profile rob28 of digits)" in repr(atk)
    mixed = robrank.attack("QA:pm=+:M=1:pgditer=40", _net(), gallery="digits", metric="N", eps=0.2)
    assert mixed.budget == {"eps": 0.2, "alpha": pytest.approx(0.011764), "pgditer": 40}
    assert "(alpha from profile rob28 of digits; eps, pgditer given)" in repr(mixed)
    given = robrank.attack("ES", _net(), gallery="digits", metric="N", eps=0.1, alpha=0.01, pgditer=10)
    assert "(given)" in repr(given)
    images, labels = torch.rand(8, 1, 28, 28), torch.arange(8) % 2
    loose = robrank.attack("ES", _net(), gallery=(images, labels), metric="N")  # no dataset: said, not hidden
    assert loose.budget["eps"] == pytest.approx(DEFAULT_EPS) and "no dataset named (pass dataset=" in repr(loose)
    named = robrank.attack("ES", _net(), gallery=(images, labels), metric="N", dataset="digits")
    assert named.budget["pgditer"] == 32 and "rob28" in repr(named)


def test_evaluate_takes_the_datasets_own_profile_and_says_so():
    import robrank

    results = robrank.evaluate(_net(), dataset="digits", metric="N", max_batches=1, batch_size=2)
    assert results.payload["profile"] == "rob28"
    assert repr(results).startswith("Results(profile='rob28' (the own profile of digits), dataset='digits'")
    assert all(a.spec.endswith("eps=0.30196:alpha=0.011764:pgditer=32") for a in results.attacks)


@pytest.mark.parametrize("make, fragments", [
    (lambda x: x.index_fill(0, torch.tensor([2]), float("nan")), ("non-finite", "image 2")),
    (lambda x: x.index_fill(0, torch.tensor([0]), float("inf")), ("non-finite",)),
    (lambda x: x * 2, ("pixels in [0, 1]",)),
    (lambda x: x.repeat(1, 3, 1, 1), ("images are 3x28x28 but the gallery's were 1x28x28",)),
    (lambda x: x[:, :, :20, :20], ("images are 1x20x20",)),
    (lambda x: x[:0], ("no images to attack",)),
])
def test_bad_images_are_one_line_robrank_errors(make, fragments):
    import robrank
    from robrank.errors import ConfigError

    images, labels = torch.rand(6, 1, 28, 28), torch.arange(6) % 2
    atk = robrank.attack("ES", _net(), gallery=(images, labels), metric="N", eps=0.1, alpha=0.02, pgditer=5)
    bad = make(images.clone())
    with pytest.raises(ConfigError) as info:
        atk(bad, labels[: bad.shape[0]])
    message = str(info.value)
    assert "\n" not in message and all(f in message for f in fragments), message


def test_a_nan_pixel_is_never_scored_as_a_perfect_attack():
    import robrank
    from robrank.errors import ConfigError

    images, labels = torch.rand(6, 1, 28, 28), torch.arange(6) % 2
    atk = robrank.attack("CA:pm=+:W=1", _net(), gallery=(images, labels), metric="N", eps=0.1, alpha=0.02, pgditer=5)
    images[1, 0, 3, 3] = float("nan")
    with pytest.raises(ConfigError, match="non-finite"):
        atk(images, labels)
    with pytest.raises(ConfigError, match="gallery images hold 1 non-finite"):
        robrank.gallery(_net(), (images, labels), metric="N")


def test_an_empty_gallery_and_an_absent_device_are_one_line_errors():
    import robrank
    from robrank.errors import ConfigError

    empty = (torch.rand(0, 1, 28, 28), torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ConfigError, match="the gallery is empty"):
        robrank.attack("ES", _net(), gallery=empty, metric="N")
    if not torch.cuda.is_available():
        for call in (lambda: robrank.attack("ES", _net(), gallery="digits", metric="N", device="cuda"),
                     lambda: robrank.gallery(_net(), "digits", metric="N", device="cuda"),
                     lambda: robrank.evaluate(_net(), dataset="digits", metric="N", device="cuda")):
            with pytest.raises(ConfigError, match="device cuda requested but torch sees no CUDA GPU"):
                call()
    with pytest.raises(ConfigError, match="unknown device 'gpu7'"):
        robrank.attack("ES", _net(), gallery="digits", metric="N", device="gpu7")


# --------------------------------------------------------------------- writes: never replace, never a traceback


def test_save_adversarial_never_replaces_earlier_results(tiny_run, tmp_path):
    folder = tmp_path / "adv"
    args = ["attack", str(tiny_run), "-A", "ES:eps=0.1:alpha=0.02:pgditer=5", "-m", "1", "-b", "4", "-D", "cpu", "--no-progress"]
    first = run_cli(*args, "--save-adversarial", str(folder))
    assert first.exit_code == 0, first.output
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert "adversarial.pt" in before and "examples.png" in before
    again = run_cli(*args, "--seed", "1", "--save-adversarial", str(folder))  # another run, the same folder
    one_line_error(again, str(folder), "already holds adversarial.pt", "never replaced", "choose a new folder")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # byte for byte
    stray = tmp_path / "pngs"
    stray.mkdir()
    (stray / "adversarial-3.png").write_bytes(b"mine")
    one_line_error(run_cli(*args, "--save-adversarial", str(stray)), "already holds adversarial-3.png")
    assert (stray / "adversarial-3.png").read_bytes() == b"mine"


def test_save_adversarial_on_an_unwritable_path_is_one_line(tiny_run, tmp_path, monkeypatch):
    import errno
    import os
    from pathlib import Path

    args = ["attack", str(tiny_run), "-A", "ES:eps=0.1:alpha=0.02:pgditer=5", "-m", "1", "-b", "2", "-D", "cpu", "--no-progress"]
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    one_line_error(run_cli(*args, "--save-adversarial", str(blocker / "adv")), str(blocker / "adv"), "Not a directory", "ENOTDIR")
    one_line_error(run_cli(*args, "--save-adversarial", str(blocker)), "is a file")
    real_mkdir = Path.mkdir

    def read_only(self, *a, **k):
        if self.name == "ro":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", read_only)
    one_line_error(run_cli(*args, "--save-adversarial", str(tmp_path / "ro")), str(tmp_path / "ro"), "Read-only file system", "EROFS")
    monkeypatch.undo()
    real_mkstemp = __import__("tempfile").mkstemp

    def forbidden(*a, **k):
        if "adversarial" in str(k.get("prefix", "")):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        return real_mkstemp(*a, **k)

    monkeypatch.setattr("tempfile.mkstemp", forbidden)
    one_line_error(run_cli(*args, "--save-adversarial", str(tmp_path / "denied")), "adversarial.pt", "Permission denied")


def test_a_full_disk_while_taking_the_run_lock_is_one_line(tmp_path, monkeypatch):
    import errno
    import os

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    run_dir = tmp_path / "run"
    one_line_error(run_cli("train", "--dataset", "digits", "--backbone", "lenet", "--loss", "ptripletN", "--max-steps", "1",
                           "--device", "cpu", "--num-workers", "0", "--run-dir", str(run_dir)),
                   str(run_dir), "No space left on device")
    from robrank.training.rundir import _HELD

    assert not _HELD  # the lock was let go


@pytest.mark.parametrize("command", ["train", "run"])
def test_a_run_dir_name_longer_than_the_filesystem_allows_is_one_line(command, tmp_path):
    long = tmp_path / ("r" * 300)
    one_line_error(run_cli(command, "--dataset", "digits", "--backbone", "lenet", "--loss", "ptripletN", "--max-steps", "1",
                           "--device", "cpu", "--num-workers", "0", "--run-dir", str(long)), "File name too long")
    one_line_error(run_cli("train", "--dataset", "digits", "--backbone", "lenet", "--loss", "ptripletN", "--max-steps", "1",
                           "--device", "cpu", "--num-workers", "0", "--resume", "--run-dir", str(long)), "File name too long")


def test_any_os_error_below_a_command_is_one_line_naming_the_path(tiny_run, tmp_path, monkeypatch):
    import errno
    import os

    import robrank.io

    def broken(*a, **k):
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(tmp_path / "where.json"))

    monkeypatch.setattr(robrank.io, "load_checkpoint", broken)
    monkeypatch.setattr("robrank.models.checkpoint.load_checkpoint", broken, raising=False)
    line = one_line_error(run_cli("eval", str(tiny_run)), "where.json", "Input/output error", "EIO")
    assert line.startswith("Error: cannot use")


# --------------------------------------------------------------------- --max-queries


def test_max_queries_is_exact_whatever_the_batch_size(tiny_run, tmp_path):
    from click.testing import CliRunner

    counts = []
    for batch in ("2", "4", "64"):
        out = CliRunner().invoke(cli, ["attack", str(tiny_run), "-A", "ES:eps=0.1:alpha=0.02:pgditer=5", "--max-queries", "7",
                                       "-b", batch, "-D", "cpu", "--json"])
        assert out.exit_code == 0, out.output
        payload = json.loads(out.stdout)
        counts.append(payload["count"])
        assert payload["max_queries"] == 7 and payload["queries"] > 7
    assert counts == [7, 7, 7]
    text = run_cli("attack", str(tiny_run), "-A", "ES:eps=0.1:alpha=0.02:pgditer=5", "--max-queries", "7", "-D", "cpu", "--no-progress")
    assert text.exit_code == 0 and "7 of 364 samples: partial" in text.output
    # -m keeps its meaning: batches of the (here given) batch size; the smaller cut wins when both are given
    both = json.loads(CliRunner().invoke(cli, ["attack", str(tiny_run), "-A", "ES:eps=0.1:alpha=0.02:pgditer=5", "--max-queries", "7",
                                               "-m", "1", "-b", "4", "-D", "cpu", "--json"]).stdout)
    assert both["count"] == 4


def test_swipe_max_queries_is_recorded_and_resumes_only_with_the_same_value(tiny_run, tmp_path):
    from robrank.swipe.schema import load_results

    out = tmp_path / "s.json"
    base = ["swipe", str(tiny_run), "-p", "rob28", "--max-queries", "3", "-D", "cpu", "-q", "--output", str(out)]
    first = run_cli(*base, "-b", "2")
    assert first.exit_code == 0, first.output
    payload = load_results(out, registry=get_registry())
    assert payload["max_queries"] == 3 and payload["max_batches"] is None
    assert {a["count"] for a in payload["attacks"]} == {3}
    again = run_cli(*base, "-b", "64")  # a finished file: the batch size does not matter with --max-queries
    assert again.exit_code == 0, again.output
    changed = ["swipe", str(tiny_run), "-p", "rob28", "--max-queries", "5", "-D", "cpu", "-q", "--output", str(out)]
    one_line_error(run_cli(*changed), "max_queries=3, not 5")


def test_the_api_and_the_option_groups_take_max_queries():
    import robrank

    from robrank.attacks import AttackOptions
    from robrank.errors import ConfigError
    from robrank.sweep.grid import SwipeSettings

    with pytest.raises(ConfigError, match="max queries must be at least 1"):
        AttackOptions(max_queries=0)
    assert SwipeSettings.from_dict({"max_queries": 10}).max_queries == 10
    results = robrank.evaluate(_net(), dataset="digits", metric="N", max_queries=3, batch_size=2)
    assert {a.count for a in results.attacks} == {3} and results.payload["max_queries"] == 3
    for command in ("attack", "swipe", "run", "sweep"):
        assert "--max-queries" in run_cli(command, "--help").output


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_an_absent_device_is_the_same_one_line_on_the_cli(tiny_run, tmp_path):
    for args in (("attack", str(tiny_run), "-A", "ES"), ("swipe", str(tiny_run), "--output", str(tmp_path / "s.json")),
                 ("eval", str(tiny_run))):
        one_line_error(run_cli(*args, "-D", "cuda"), "device cuda requested but torch sees no CUDA GPU")
