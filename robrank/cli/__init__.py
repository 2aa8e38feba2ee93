"""The ``robrank`` command line.

Built-in commands live one per module in this package and are imported only when used, so
``robrank --help`` and ``robrank list`` stay quick; plugins add theirs through the
``register_commands`` hook. Every :class:`~robrank.errors.RobrankError` raised below a
command is printed as one line with exit code 2.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from .. import __version__
from ..errors import RobrankError, os_error_message, user_message
from ..plugins import get_host
from .options import suggest

#: command name -> "module:attribute" inside robrank.cli
BUILTIN_COMMANDS: dict[str, str] = {
    "list": "list_cmd:list_command",
    "data": "data:data_group",
    "train": "train:train_command",
    "eval": "evaluate:eval_command",
    "attack": "attack:attack_command",
    "swipe": "swipe:swipe_command",
    "report": "report:report_command",
    "run": "run:run_command",
    "plot": "plot:plot_group",
    "show": "show:show_command",
    "sweep": "sweep:sweep_command",
    "bench": "bench:bench_command",
    "leaderboard": "leaderboard:leaderboard_command",
}


class UserError(click.ClickException):
    """A RobrankError as click shows it: ``Error: <message>`` on one line, exit code 2."""

    exit_code = 2


#: what Ctrl-C leaves behind, per command that saves its work when interrupted
RESUME_HINTS: dict[str, str] = {
    "train": "the last step is checkpointed; rerun with --resume to continue",
    "run": "work so far is saved; rerun with --resume to continue",
    "swipe": "finished attacks are saved; rerun the same command to continue",
}
INTERRUPTED_EXIT = 130  # 128 + SIGINT, what shells report for Ctrl-C


class Interrupted(click.ClickException):
    """Ctrl-C: one line saying what was kept, exit code 130 (never click's "Aborted!", exit 1)."""

    exit_code = INTERRUPTED_EXIT

    def __init__(self, command: str | None) -> None:
        hint = RESUME_HINTS.get(command or "")
        super().__init__(f"interrupted; {hint}" if hint else "interrupted")
        self.command = command

    def show(self, file: Any = None) -> None:
        prefix = f"robrank {self.command}" if self.command else "robrank"
        click.echo(f"{prefix}: {self.message}", err=True)


def _builtin(name: str) -> click.Command | None:
    target = BUILTIN_COMMANDS.get(name)
    if target is None:
        return None
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{module_name}":
            return None  # command not built yet in this checkout
        raise
    return getattr(module, attr)


class RobrankGroup(click.Group):
    """Resolves built-in commands lazily and plugin commands from the current plugin host."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = [n for n in BUILTIN_COMMANDS if _builtin(n) is not None]
        return names + sorted(n for n in _plugin_commands() if n not in BUILTIN_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = _builtin(cmd_name)
        if command is None:
            command = _plugin_commands().get(cmd_name)
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        """click's lookup, plus "did you mean" for a mistyped command (``robrank trian``)."""
        name = click.utils.make_str(args[0]) if args else ""
        if args and self.get_command(ctx, name) is None and not name.startswith("-"):
            hint = suggest(name, self.list_commands(ctx))
            ctx.fail(f"No such command {name!r}{hint or ''}{'' if hint else '.'} (robrank --help lists the commands)")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RobrankError as exc:
            raise UserError(user_message(exc)) from exc
        except OSError as exc:  # the OS refused a file operation (ENAMETOOLONG, EROFS, ENOSPC, ...): one line, never a traceback
            if os.environ.get("ROBRANK_DEBUG"):
                raise
            raise UserError(os_error_message(exc)) from exc
        except KeyboardInterrupt as exc:  # click's standalone mode would print "Aborted!" and exit 1
            if os.environ.get("ROBRANK_DEBUG"):
                raise
            raise Interrupted(ctx.invoked_subcommand) from exc


def _plugin_commands() -> dict[str, click.Command]:
    try:
        return get_host().commands()
    except RobrankError as exc:  # e.g. strict mode with a broken plugin
        raise UserError(" ".join(str(exc).split())) from exc


@click.group(cls=RobrankGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="robrank")
def cli() -> None:
    """Adversarial robustness of deep ranking models: train, attack, swipe, report."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    if os.environ.get("ROBRANK_DEBUG"):
        cli.main(args=argv, prog_name="robrank")
        return
    try:
        cli.main(args=argv, prog_name="robrank")
    except KeyboardInterrupt:  # outside any command (e.g. while plugins load)
        Interrupted(None).show()
        sys.exit(INTERRUPTED_EXIT)
