"""The Empirical Robustness Score (ERS) as the reference code's ``pjswipe`` script computes it, as a profile score.

Ten raw scores come from the *adversarial* summaries of an ERS profile (rob28/rob224); each
is rescaled so that 0 means "completely broken" and 100 "fully robust", and ERS is their
plain mean (:class:`robrank.scoring.Score` does the bookkeeping; this module only says which
attack fills which column and how it is rescaled, pjswipe's ``ersnormalize``):

* every rate is in percent (results schema version 3); CA+/QA+ percentiles sit near 50 on a clean model, hence the factor 2;
  CA-/QA- become 100 minus the percentile;
* TMA's cosine similarity s becomes 100 (1 - s);
* ES:D (the embedding shift) is divided by 2, the largest distance on the unit sphere (for
  the E metric it can exceed 2 and the term goes negative, as in the reference); ES:R is the
  ES attack's R@1, already in percent;
* LTM and GTM R@1 and GTT's retain@4 are taken as they are.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from robrank.plugin_api import EMBSHIFT, Column, IncompleteScoresError, Score


def _double(v: float) -> float:
    return 2.0 * v


def _complement(v: float) -> float:
    return 100.0 - v


def _cosine(v: float) -> float:
    return 100.0 * (1.0 - v)


def _shift(v: float) -> float:
    return 100.0 * (2.0 - v) / 2.0


#: the published column order (robdml tab-sota) and pjswipe's rescaling
ERS = Score(
    name="ERS",
    summary="Empirical Robustness Score: mean of ten rescaled attack results (0 = broken, 100 = robust)",
    columns=(
        Column("cap", "CA+", "CA", "prank", {"pm": "+"}, 1.0, _double),
        Column("cam", "CA-", "CA", "prank", {"pm": "-"}, 1.0, _complement),
        Column("qap", "QA+", "QA", "prank", {"pm": "+"}, 1.0, _double),
        Column("qam", "QA-", "QA", "prank", {"pm": "-"}, 1.0, _complement),
        Column("tma", "TMA", "TMA", "Cosine-SIM", {}, 1.0, _cosine, decimals=3),
        Column("esd", "ES:D", "ES", EMBSHIFT, {}, 1.0, _shift, decimals=3),
        Column("esr", "ES:R", "ES", "r@1", {}),
        Column("ltm", "LTM", "LTM", "r@1", {}),
        Column("gtm", "GTM", "GTM", "r@1", {}),
        Column("gtt", "GTT", "GTT", "retain@4", {}),
    ),
)

#: raw-score keys, column labels and printed decimals, in the published column order
KEYS: tuple[str, ...] = ERS.keys
LABELS: dict[str, str] = ERS.labels
DECIMALS: dict[str, int] = ERS.decimals


def raw_scores(results: Iterable[Any] | Mapping[str, Any]) -> dict[str, float | None]:
    return ERS.raw_scores(results)


def missing(raw: Mapping[str, float | None] | Sequence[float]) -> list[str]:
    return ERS.missing(raw)


def rescale(raw: Mapping[str, float | None] | Sequence[float]) -> dict[str, float | None]:
    return ERS.rescale(raw)


def ers(raw: Mapping[str, float | None] | Sequence[float]) -> float:
    return ERS.value(raw)


def ers_block(results: Iterable[Any] | Mapping[str, Any]) -> dict[str, Any]:
    return ERS.block(results)


__all__ = ["ERS", "KEYS", "LABELS", "DECIMALS", "IncompleteScoresError", "raw_scores", "rescale", "missing", "ers", "ers_block"]
