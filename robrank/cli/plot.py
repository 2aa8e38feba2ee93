"""``robrank plot curve|ers|training``: paper figures of swipe results and training runs.

Every subcommand writes one file, ``--output``: PNG unless the name ends in .svg or .pdf
(long option only: ``-o`` means ``--option`` in every command). The same inputs give the
same bytes, so figures can live in a repository.
"""
from __future__ import annotations

import click

from .options import figure_output_option as _output
from .options import with_default
from ..plot.curve import plot_curve
from ..plot.ers import plot_ers
from ..plot.figure import figure_format
from ..plugins import get_registry


def _check_format(output: str) -> None:
    figure_format(output)  # a bad suffix fails before any file is read


@click.group("plot")
def plot_group() -> None:
    """Figures: robustness curves, ERS bars, training curves (needs the plot extra)."""


@plot_group.command("curve")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=str))
@_output("curve.png")
@click.option("--shared-y/--independent-y", "shared_y", default=True,
              help=with_default("One y range for the panels whose metrics have the same unit, or one per panel", "shared"))
def curve_command(results: tuple[str, ...], output: str, shared_y: bool) -> None:
    """Robustness curves of swipe RESULTS whose attacks vary eps (or W/M): one panel per attack, one line per run.

    \b
    Example:
      robrank swipe runs/A -p PROFILE && robrank plot curve runs/A/swipe-PROFILE.json --output curve.pdf
    """
    _check_format(output)
    click.echo(f"wrote {plot_curve(list(results), output, get_registry(), shared_y=shared_y)}")


@plot_group.command("ers")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=str))
@_output("ers.png")
def ers_command(results: tuple[str, ...], output: str) -> None:
    """The ten rescaled ERS scores of each run (ERS-profile swipe RESULTS) as grouped bars."""
    _check_format(output)
    click.echo(f"wrote {plot_ers(list(results), output, get_registry())}")


@plot_group.command("training")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=str))
@_output("training.png")
@click.option("--label", "labels", multiple=True, help=with_default("Legend label of each RUN, in order; repeatable.", "the directory name"))
def training_command(runs: tuple[str, ...], output: str, labels: tuple[str, ...]) -> None:
    """R@1, mAP, NMI and the training loss per epoch of one or more RUN directories, overlaid."""
    from ..plot.training import plot_training  # lazy: keeps robrank --help fast

    _check_format(output)
    click.echo(f"wrote {plot_training(list(runs), output, labels)}")
