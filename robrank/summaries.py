"""Attack summaries: the keys every attack shares and how a report shows a summary value.

An attack's summary is a flat ``{key: number}`` dict per side (clean ``orig``, adversarial
``adv``). The keys are the attack's own (it lists them in ``Attack.reports``); the one key
the engine adds to every adversarial summary is :data:`EMBSHIFT`. How a value is printed
(label, scale, full range, decimals) is declared by the attack as :class:`MetricDisplay`
objects, so the report needs no table of attack names and a plugin attack is shown in the
units it chose.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: per-sample embedding shift d(f(x~), f(x)), added by the engine to every adversarial summary
EMBSHIFT = "embshift"
#: the range of a rate stored as a fraction (kept for plugins that still report one)
FRACTION: tuple[float, float] = (0.0, 1.0)
#: the range of a rate in percent: how robrank reports percentile ranks, recalls, retention and accuracies
PERCENT: tuple[float, float] = (0.0, 100.0)
#: the range of the keys the engine adds (an attack declares its own keys' ranges in ``Attack.bounds``)
ENGINE_BOUNDS: dict[str, tuple[float, float]] = {EMBSHIFT: (0.0, math.inf)}
#: model queries per attacked image of a black-box (NES) attack, added by the engine
QUERIES = "queries"
#: the share of queries whose two nearest items (own slot left out) are at one distance
TIES_KEY = "top_ties"
#: above this share of tied tops, outputs print :func:`tie_note`: a continuous embedding has
#: none, while a collapsed or quantised one ties nearly everywhere (docs/attacks.md)
TIE_WARN_SHARE = 0.01


def tie_note(share: float | None) -> str | None:
    """The one line outputs print when more than :data:`TIE_WARN_SHARE` of the queries have a tied top; else None."""
    if share is None or not share > TIE_WARN_SHARE:
        return None
    return (f"note: {100.0 * share:.1f}% of the queries have a tie at the top of their ranking (more than "
            f"{100.0 * TIE_WARN_SHARE:g}%): the embedding looks collapsed or quantised; ties are scored as a random order, "
            "never in the model's favour (attacks count them for the attacker)")




def lookup(summary: Mapping[str, Any], key: str) -> float | None:
    """A summary value by key, or None; also accepts the reference's prefixed keys (``CA+:prank``)."""
    if key in summary:
        return float(summary[key])
    matches = [k for k in summary if k.endswith(":" + key)]
    return float(summary[matches[0]]) if len(matches) == 1 else None


#: directions of a measure that are more robust (``MetricDisplay.robust``)
HIGHER, LOWER, WITH_PM = "higher", "lower", "higher for pm=+, lower for pm=-"
#: the arrows tables put next to a measure: the direction that is more robust
ARROW_UP, ARROW_DOWN = "\u2191", "\u2193"


@dataclass(frozen=True)
class MetricDisplay:
    """How reports show one summary key: ``label``, values times ``scale``, out of ``full``.

    E.g. a percentile rank (stored in percent) is ``MetricDisplay("prank", "PCTL",
    full=100)`` and prints ``12.3 / 100.0``; ``decimals`` applies to the value and the full
    range alike. ``full=None`` prints no range.
    """

    key: str
    label: str
    scale: float = 1.0
    full: float | None = None
    decimals: int = 1
    #: which direction is more robust (the attack did less): ``HIGHER``, ``LOWER``, ``WITH_PM``
    #: (higher for ``pm=+``, lower for ``pm=-``), or None (a side measure, no direction)
    robust: str | None = None

    def robust_direction(self, spec_fields: Mapping[str, Any] | None = None) -> str | None:
        """``HIGHER``/``LOWER`` for an attack with these spec fields (``WITH_PM`` resolved by ``pm``), or None."""
        if self.robust == WITH_PM:
            pm = (spec_fields or {}).get("pm")
            return None if pm is None else (HIGHER if str(pm) == "+" else LOWER)
        return self.robust

    def arrow(self, spec_fields: Mapping[str, Any] | None = None) -> str:
        """``↑`` (higher = more robust), ``↓`` or ``↑/↓`` (by pm) for headers and rows; "" without a direction."""
        direction = self.robust_direction(spec_fields) if spec_fields is not None else self.robust
        return {HIGHER: ARROW_UP, LOWER: ARROW_DOWN, WITH_PM: f"{ARROW_UP}pm=+/{ARROW_DOWN}pm=-"}.get(direction or "", "")

    def value(self, summary: Mapping[str, Any]) -> float | None:
        raw = lookup(summary, self.key)
        return None if raw is None else self.scale * raw

    @property
    def full_text(self) -> str:
        return "" if self.full is None else f"{self.full:.{self.decimals}f}"

    def details(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "scale": self.scale, "full": self.full, "decimals": self.decimals,
                "robust": self.robust}


#: how a summary key is shown when its attack declares nothing (or is not installed)
def plain(key: str) -> MetricDisplay:
    return MetricDisplay(key, key, 1.0, None, 4)


__all__ = ["EMBSHIFT", "ENGINE_BOUNDS", "FRACTION", "PERCENT", "HIGHER", "LOWER", "WITH_PM", "ARROW_UP", "ARROW_DOWN", "QUERIES", "TIES_KEY", "TIE_WARN_SHARE", "MetricDisplay", "lookup", "plain", "tie_note"]
