"""``robrank report``: raw scores, rescaled scores and ERS of swipe results, side by side."""
from __future__ import annotations

import click

from ..swipe.report import FORMATS


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="table", help="Output format [default: table].")
def report_command(results: tuple[str, ...], fmt: str) -> None:
    """Tabulate one or more swipe RESULTS files (one row per file for ERS profiles)."""
    from ..swipe.report import report

    click.echo(report(list(results), fmt), nl=False)
