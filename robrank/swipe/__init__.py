"""Swipes: a profile of attacks against one model, one resumable JSON file, scores and reports.

:mod:`.runner` runs a profile (:func:`swipe`); the profile's own score (robrank.scoring,
e.g. the bundled ERS) is computed from the results; :mod:`.summary` summarises results
files, :mod:`.tables` builds the report's tables and :mod:`.report` renders them (text,
markdown, JSON, CSV, :mod:`.latex`, :mod:`.html` with the figures of robrank.plot, which
stands below it); :mod:`.schema` checks the file format documented in docs/swipe-format.md.
This package imports neither the formats nor the figures, so the figures can use the summaries.
The submodule name ``report`` is not shadowed by a function here: use
``robrank.swipe.report.report``.
"""
from __future__ import annotations

import importlib
from typing import Any

from ..scoring import IncompleteScoresError
from .schema import SCHEMA, SCHEMA_VERSION, SwipeFileError, load_results, validate
from .summary import load_summaries

#: the runner imports the attacks (and torch): loaded on first access, so the CLI's help and
#: the report/format modules under this package stay light (docs/plugins.md, tests/test_light_cli.py)
_RUNNER = ("swipe", "SwipeBackend", "SwipeResumeError", "default_output")


def __getattr__(name: str) -> Any:
    if name in _RUNNER:
        return getattr(importlib.import_module(f"{__name__}.runner"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "swipe",
    "SwipeBackend",
    "SwipeResumeError",
    "default_output",
    "IncompleteScoresError",
    "load_summaries",
    "load_results",
    "validate",
    "SwipeFileError",
    "SCHEMA",
    "SCHEMA_VERSION",
]
