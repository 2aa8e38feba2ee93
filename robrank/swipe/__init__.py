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

from ..scoring import IncompleteScoresError
from .runner import SwipeBackend, SwipeResumeError, default_output, swipe
from .schema import SCHEMA, SCHEMA_VERSION, SwipeFileError, load_results, validate
from .summary import load_summaries

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
