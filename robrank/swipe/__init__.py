"""Swipes: a profile of attacks against one model, one resumable JSON file, scores and reports.

:mod:`.runner` runs a profile (:func:`swipe`); the profile's own score (robrank.scoring,
e.g. the bundled ERS) is computed from the results; :mod:`.report` renders one or more
results files; :mod:`.schema` checks the file format documented in docs/swipe-format.md.
The submodule name ``report`` is not shadowed by a function here: use
``robrank.swipe.report.report``.
"""
from __future__ import annotations

from ..scoring import IncompleteScoresError
from .report import format_report, load_summaries
from .runner import SwipeBackend, SwipeResumeError, default_output, swipe
from .schema import SCHEMA, SCHEMA_VERSION, SwipeFileError, load_results, validate

__all__ = [
    "swipe",
    "SwipeBackend",
    "SwipeResumeError",
    "default_output",
    "IncompleteScoresError",
    "format_report",
    "load_summaries",
    "load_results",
    "validate",
    "SwipeFileError",
    "SCHEMA",
    "SCHEMA_VERSION",
]
