"""``robrank leaderboard CARDS... --output DIR``: a static site ranking model cards by their worst-case score."""
from __future__ import annotations

import click

from ..plugins import get_registry
from ..runtime import RuntimeOptions, resolve_device
from .options import data_root_option, runtime_options


@click.command("leaderboard")
@click.argument("cards", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--output", type=click.Path(file_okay=False, path_type=str), required=True, help="Folder of the site (index.html, entries/, leaderboard.json, leaderboard.md).")
@click.option("--curve", "curves", multiple=True, type=click.Path(dir_okay=False, path_type=str),
              help="A swipe over several budgets (robrank swipe -p a curve profile) drawn as a robustness curve on the page of the "
                   "card whose model it attacked (matched by the model's sha256). Repeatable.")
@click.option("--show", is_flag=True, default=False,
              help="Draw robrank show's before/after ranking of one query under the reference profile's first attack for each "
                   "entry whose checkpoint is still on disk (one attack run per entry).")
@runtime_options()
@data_root_option
def leaderboard_command(cards: tuple[str, ...], output: str, curves: tuple[str, ...], show: bool, runtime: RuntimeOptions,
                        data_root: str | None) -> None:
    """Build a self-contained leaderboard site from CARDS written by robrank bench (docs/bench.md)."""
    from ..cards.site import build_site  # lazy: keeps robrank --help fast

    registry = None
    if curves or show:
        registry = get_registry()
    device = str(resolve_device(runtime.device)) if show else "cpu"  # only --show runs a model
    index = build_site(cards, output, curves=curves, show=show, registry=registry, device=device, data_root=data_root)
    click.echo(f"leaderboard: {index} ({len(cards)} entries)")
