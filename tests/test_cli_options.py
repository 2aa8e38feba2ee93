"""One CLI: shared option groups, one meaning per short option, --json, --quiet, suggestions."""
from __future__ import annotations

import json

import click
import pytest

from robrank.cli import BUILTIN_COMMANDS, cli


def _commands() -> dict[str, click.Command]:
    ctx = click.Context(cli)
    found: dict[str, click.Command] = {}
    for name in BUILTIN_COMMANDS:
        command = cli.get_command(ctx, name)
        if isinstance(command, click.Group):
            sub = click.Context(command, parent=ctx)
            for child in command.list_commands(sub):
                found[f"{name} {child}"] = command.get_command(sub, child)
        elif command is not None:
            found[name] = command
    return found


def test_a_short_option_means_one_thing_in_every_command():
    meaning: dict[str, tuple[str, str]] = {}
    for name, command in _commands().items():
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            longs = sorted(o for o in param.opts if o.startswith("--"))
            for short in (o for o in param.opts if not o.startswith("--")):
                if short in meaning:
                    assert meaning[short][1] == longs[0], f"{short}: {meaning[short]} vs {name} {longs[0]}"
                else:
                    meaning[short] = (name, longs[0])
    assert meaning["-o"][1] == "--option" and meaning["-D"][1] == "--device" and meaning["-b"][1] == "--batch-size"


def test_train_and_run_share_their_training_options():
    commands = _commands()

    def options(name: str) -> dict[str, str | None]:
        return {p.name: p.help for p in commands[name].params if isinstance(p, click.Option)}

    train, run = options("train"), options("run")
    shared = set(train) & set(run)
    assert len(shared) >= 30
    assert all(train[k] == run[k] for k in shared)  # the same declaration, not a copy
    assert {"device", "as_json", "quiet", "batch_size", "defense_option"} <= shared
    for name in ("train", "run", "eval", "attack", "swipe"):
        assert "device" in options(name) and "as_json" in options(name), name
    for name in ("list", "report", "data list", "data check", "data download"):  # every command that prints results
        assert "as_json" in options(name), name


def test_defaults_are_shown_in_one_style():
    for name, command in _commands().items():
        for param in command.params:
            if isinstance(param, click.Option):
                assert not param.show_default, f"{name} {param.name}: show_default (use [default: X] in the help)"
                assert "(default:" not in (param.help or ""), f"{name} {param.name}"


def test_mistyped_commands_and_kinds_get_suggestions(robrank_cli):
    result = robrank_cli("trian")
    assert result.exit_code == 2 and "did you mean 'train'" in result.output
    singular = robrank_cli("list", "attack")
    assert singular.exit_code == 0 and singular.output.startswith("attacks (")
    typo = robrank_cli("list", "defences")
    assert typo.exit_code == 2 and "did you mean 'defenses'" in typo.output


def test_train_json_and_quiet(robrank_cli, tmp_path):
    run_dir = tmp_path / "r"
    result = robrank_cli("train", "-C", "digits:lenet:ptripletN", "--run-dir", str(run_dir), "--max-steps", "1", "-b", "16",
                         "-D", "cpu", "--json")
    assert result.exit_code == 0, result
    payload = json.loads(result.stdout)
    assert payload["run_dir"] == str(run_dir) and payload["steps"] == 1 and "R@1" in payload["metrics"]
    quiet = robrank_cli("train", "--resume", "--run-dir", str(run_dir), "--max-steps", "2", "-q")
    assert quiet.exit_code == 0, quiet
    assert "epoch " not in quiet.stdout and "2 step(s)" in quiet.stdout


@pytest.mark.parametrize("text,expected", [("ics=true", ("ics", True)), ("src=softhard", ("src", "softhard"))])
def test_key_value_type(text, expected):
    from robrank.cli.options import KeyValue

    assert KeyValue().convert(text, None, None) == expected
    with pytest.raises(click.BadParameter, match="KEY=VALUE"):
        KeyValue().convert("novalue", None, None)


#: the runtime options and the parameter each command's callback would otherwise get
_RUNTIME_PARAMS = {"device", "batch_size", "num_workers", "amp", "channels_last", "compile_"}


def test_every_command_with_runtime_options_gets_them_as_one_value():
    """Device, batch size, workers and the speed flags come from one group and arrive as ``runtime=``."""
    import inspect

    from robrank.cli.options import RUNTIME_PARAMS

    assert set(RUNTIME_PARAMS) == _RUNTIME_PARAMS
    with_runtime = []
    for name, command in _commands().items():
        declared = {p.name for p in command.params} & _RUNTIME_PARAMS
        if not declared:
            continue
        with_runtime.append(name)
        signature = inspect.signature(command.callback)
        assert "runtime" in signature.parameters, name
        assert not declared & set(signature.parameters), f"{name} still takes {declared & set(signature.parameters)}"
        assert "device" in declared, name  # every group declares -D/--device
    assert {"attack", "swipe", "sweep", "eval", "bench", "show", "leaderboard", "train", "run"} <= set(with_runtime)


def test_runtime_options_reach_the_command_with_what_was_given(monkeypatch):
    """An option left out keeps its default and stays out of ``given`` (a resumed run keeps its saved value)."""
    from click.testing import CliRunner

    from robrank.cli.options import runtime_options
    from robrank.runtime import RuntimeOptions

    seen: list[RuntimeOptions] = []

    @click.command()
    @runtime_options("Queries per batch.", workers=True, speed="attack")
    def command(runtime: RuntimeOptions) -> None:
        seen.append(runtime)

    runner = CliRunner()
    assert runner.invoke(command, ["-b", "7", "--amp", "-D", "cpu"]).exit_code == 0
    assert runner.invoke(command, []).exit_code == 0
    given, default = seen
    assert given == RuntimeOptions(device="cpu", batch_size=7, amp=True)
    assert given.given == {"device", "batch_size", "amp"} and given.given_fields() == {"amp": True, "batch_size": 7, "device": "cpu"}
    assert default == RuntimeOptions() and default.given == frozenset() and not any(default.speed.values())
    assert runner.invoke(command, ["--num-workers", "-1"]).exit_code == 2  # the range is the option's


def test_training_speed_flags_are_training_s_own():
    """Training's --amp is loss-scaled fp16 (no --channels-last); the attacks' is bf16 autocast."""
    commands = _commands()
    helps = {name: {p.name: p.help for p in commands[name].params} for name in ("train", "attack")}
    assert "channels_last" not in helps["train"] and "channels_last" in helps["attack"]
    assert "fp16" in helps["train"]["amp"] and "bf16 autocast" in helps["attack"]["amp"]
    assert "SPC-2 pairs" in helps["train"]["batch_size"] and "Queries" in helps["attack"]["batch_size"]
