"""Regenerate docs/leaderboard from robrank's reproduction results (docs/results) and any bench cards.

    python benchmarks/leaderboard.py                      # or: make leaderboard
    python benchmarks/leaderboard.py --cards runs/*/bench/card.json

Each docs/results/<row>/ with a finished rob28 swipe becomes a "reported" card in
docs/leaderboard/cards/<row>.json: its reference ERS, its worst case only where a finished
swipe-rob28-aa.json of the same checkpoint is stored (none is today, so those entries say
"not measured"), its clean metrics from metrics.jsonl. Then `robrank leaderboard` builds
the site from those cards and the extra ones given.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from robrank.plugins import get_registry

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=REPO / "docs" / "results")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "leaderboard")
    parser.add_argument("--cards", nargs="*", default=[], help="more cards written by robrank bench")
    args = parser.parse_args(argv)

    from robrank.cards.stored import stored_card
    from robrank.io import write_json

    cards = []
    for row in sorted(p.parent for p in args.results.glob("*/swipe-rob28.json")):
        path = args.output / "cards" / f"{row.name}.json"
        write_json(path, stored_card(row, registry=get_registry()))
        cards.append(str(path))
    command = [sys.executable, "-m", "robrank", "leaderboard", *cards, *args.cards, "--output", str(args.output)]
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
