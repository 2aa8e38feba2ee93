"""Progress output that suits where it goes: bars on a terminal, plain lines in a log file.

tqdm redraws a bar by writing carriage returns; in a file (``robrank run > log``, a batch
job, CI) every redraw becomes a line of its own, and nested bars (swipe -> attack -> batch)
fill a log with hundreds of them. So a bar is only drawn when stderr is a terminal; without
one, each unit of work that matters (an epoch, an attack) is reported as one line instead.
"""
from __future__ import annotations

import os
import sys
from typing import Any

#: ``bars`` or ``lines`` forces a style (e.g. to keep bars under a pseudo-terminal recorder)
ENV_PROGRESS = "ROBRANK_PROGRESS"


def interactive() -> bool:
    """Whether progress may draw bars: stderr is a terminal (or ``ROBRANK_PROGRESS=bars``)."""
    forced = os.environ.get(ENV_PROGRESS, "").strip().lower()
    if forced in ("bars", "lines"):
        return forced == "bars"
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def bar(enabled: bool, **options: Any) -> Any:
    """A tqdm bar when ``enabled`` and on a terminal, else None (callers skip their updates)."""
    if not (enabled and interactive()):
        return None
    from tqdm.auto import tqdm  # lazy: tqdm loads only when a bar is drawn

    return tqdm(dynamic_ncols=True, **options)


def line(enabled: bool, text: str) -> None:
    """One progress line on stderr, only when bars are off (so a terminal never gets both)."""
    if enabled and not interactive():
        print(text, file=sys.stderr, flush=True)


__all__ = ["ENV_PROGRESS", "interactive", "bar", "line"]
