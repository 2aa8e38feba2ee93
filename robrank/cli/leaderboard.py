"""``robrank leaderboard CARDS... --output DIR``: a static site ranking model cards by their worst-case score."""
from __future__ import annotations

import click


@click.command("leaderboard")
@click.argument("cards", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--output", type=click.Path(file_okay=False, path_type=str), required=True, help="Folder of the site (index.html, entries/, leaderboard.json, leaderboard.md).")
def leaderboard_command(cards: tuple[str, ...], output: str) -> None:
    """Build a self-contained leaderboard site from CARDS written by robrank bench (docs/bench.md)."""
    from ..cards.site import build_site  # lazy: keeps robrank --help fast

    index = build_site(cards, output)
    click.echo(f"leaderboard: {index} ({len(cards)} entries)")
