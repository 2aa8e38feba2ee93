"""Swipes: a profile of attacks against one model, one resumable JSON file, ERS and reports.

:mod:`.runner` runs a profile (:func:`swipe`); :mod:`.ers` computes the Empirical Robustness
Score from the results; :mod:`.report` renders one or more results files; :mod:`.schema`
checks the file format documented in docs/swipe-format.md. The submodule names ``ers`` and
``report`` are not shadowed by functions here: use ``robrank.swipe.ers.ers`` and
``robrank.swipe.report.report``.
"""
from __future__ import annotations

from .ers import IncompleteScoresError, ers_block, raw_scores, rescale
from .report import format_report, load_summaries
from .runner import SwipeBackend, SwipeResumeError, default_output, swipe
from .schema import SCHEMA, SCHEMA_VERSION, SwipeFileError, load_results, validate

__all__ = [
    "swipe",
    "SwipeBackend",
    "SwipeResumeError",
    "default_output",
    "raw_scores",
    "rescale",
    "ers_block",
    "IncompleteScoresError",
    "format_report",
    "load_summaries",
    "load_results",
    "validate",
    "SwipeFileError",
    "SCHEMA",
    "SCHEMA_VERSION",
]
