"""How far a sample's mean may fall from a card's full-split mean before the card is refuted.

The card claims a column's mean over all N queries. ``--verify`` re-attacks a seeded random
sample of n of them without replacement; its mean then has a standard error of
σ/√n·√((N − n)/(N − 1)) around the true mean (the finite-population correction makes a
sample of the whole split an exact check). σ is not known, but under the card's claim it is
bounded: a per-query value that lies in [lo, hi] with mean μ has variance at most
(μ − lo)(hi − μ) (the Bhatia–Davis inequality), so the card's own number gives σ without
any per-query record. A column without a finite range (the embedding shift) uses the
sample's standard deviation instead. The bound is z·SE at the requested two-sided
confidence, plus one query's worth of the full split ((hi − lo)/N) for float differences
between machines that flip a query on a tie. The score (the mean of the columns) gets
σ ≤ the mean of the columns' σ (the standard deviation of a sum is at most the sum of theirs).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist


@dataclass(frozen=True)
class Check:
    """One row of a verification: the card's value, the sample's, and whether they agree."""

    name: str
    card: float
    sample: float
    tolerance: float
    sigma: float
    note: str = ""

    @property
    def passed(self) -> bool:
        return not self.note and abs(self.sample - self.card) <= self.tolerance

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "card": self.card, "sample": self.sample, "difference": self.sample - self.card,
                "tolerance": self.tolerance, "sigma": self.sigma, "passed": self.passed, "note": self.note}


def z_value(confidence: float) -> float:
    """The two-sided normal quantile: 3.29 at 0.999."""
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def finite_population(n: int, total: int) -> float:
    return 0.0 if total <= 1 or n >= total else math.sqrt((total - n) / (total - 1))


def sigma_bound(claimed: float, low: float, high: float, values: Sequence[float]) -> float:
    """σ under the claim (Bhatia–Davis) for a bounded column, else the sample's standard deviation."""
    if math.isfinite(low) and math.isfinite(high):
        return math.sqrt(max(0.0, (claimed - low) * (high - claimed)))
    if len(values) < 2:
        return math.inf
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def column_check(name: str, claimed: float, values: Sequence[float], low: float, high: float, total: int, z: float) -> Check:
    """The row of one column: sample mean of ``values`` (n of ``total`` queries) against ``claimed``."""
    n = len(values)
    mean = sum(values) / n
    sigma = sigma_bound(claimed, low, high, values)
    slack = (high - low) / total if math.isfinite(high - low) else 0.0
    tolerance = z * sigma / math.sqrt(n) * finite_population(n, total) + slack + 1e-6
    note = ""
    if not low - 1e-6 <= claimed <= high + 1e-6:
        note = f"the card's value lies outside the column's range [{low:g}, {high:g}]"
    return Check(name, claimed, mean, tolerance, sigma, note)


def score_check(name: str, claimed: float, columns: Sequence[Check]) -> Check:
    """The score's row: the mean of the columns, with σ and slack at most the mean of theirs."""
    k = len(columns)
    sample = sum(c.sample for c in columns) / k
    tolerance = sum(c.tolerance for c in columns) / k
    sigma = sum(c.sigma for c in columns) / k
    return Check(name, claimed, sample, tolerance, sigma)


__all__ = ["Check", "column_check", "score_check", "sigma_bound", "finite_population", "z_value"]
