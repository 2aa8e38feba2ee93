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
