"""``robrank report``: raw scores, rescaled scores and ERS of swipe results, side by side."""
from __future__ import annotations

import click

from ..swipe.report import FORMATS
from .options import json_option
from ..plugins import get_registry
from ..swipe.report import report


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="table", help="Output format [default: table].")
@json_option
def report_command(results: tuple[str, ...], fmt: str, as_json: bool) -> None:
    """Tabulate one or more swipe RESULTS files (one row per file for ERS profiles).

    ``--json`` is ``-f json``, as in the other commands.
    """
    click.echo(report(list(results), "json" if as_json else fmt, registry=get_registry()), nl=False)
