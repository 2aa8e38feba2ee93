"""The Empirical Robustness Score (ERS) as the reference code's ``pjswipe`` script computes it (Zhou et al., TPAMI 2024).

Ten raw scores come from the *adversarial* summaries of an ERS profile (rob28/rob224); each
is rescaled so that 0 means "completely broken" and 100 "fully robust", and ERS is their
plain mean. The reference silently used 0.0 for any attack missing from the file, which
inflates or deflates ERS without a word; here a missing score stays ``None`` and
:func:`ers` refuses to average an incomplete set.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import RobrankError

#: raw-score keys, in the published column order
KEYS: tuple[str, ...] = ("cap", "cam", "qap", "qam", "tma", "esd", "esr", "ltm", "gtm", "gtt")

#: column labels of the published tables (robdml tab-sota), same order as KEYS
LABELS: dict[str, str] = {
    "cap": "CA+",
    "cam": "CA-",
    "qap": "QA+",
    "qam": "QA-",
    "tma": "TMA",
    "esd": "ES:D",
    "esr": "ES:R",
    "ltm": "LTM",
    "gtm": "GTM",
    "gtt": "GTT",
}

#: decimals the published tables print each raw score with
DECIMALS: dict[str, int] = {k: (3 if k in ("tma", "esd") else 1) for k in KEYS}

_PM = re.compile(r"(?:^|:)pm=([+-])")


class IncompleteScoresError(RobrankError):
    """ERS asked for while some of the ten attacks have no result."""


def _field(entry: Any, name: str) -> Any:
    return entry[name] if isinstance(entry, Mapping) else getattr(entry, name)


def _metric(summary: Mapping[str, float], key: str, spec: str) -> float:
    """A summary value by its key; also accepts the reference's prefixed keys (``CA+:prank``)."""
    if key in summary:
        return float(summary[key])
    suffixed = [k for k in summary if k.endswith(":" + key)]
    if len(suffixed) == 1:
        return float(summary[suffixed[0]])
    raise RobrankError(f"the adversarial summary of {spec!r} has no {key!r} value (keys: {', '.join(sorted(summary))}); the results file is not a swipe of this attack")


def _slot(attack_type: str, spec: str) -> list[tuple[str, str, float]]:
    """(raw key, summary key, factor) pairs this attack contributes; [] if none."""
    if attack_type in ("CA", "QA"):
        match = _PM.search(spec)
        if match is None:
            raise RobrankError(f"attack {spec!r} has no pm=+ or pm=- field; cannot tell which ERS column it fills")
        key = attack_type[:2].lower() + ("p" if match.group(1) == "+" else "m")
        return [(key, "prank", 100.0)]
    return {
        "TMA": [("tma", "Cosine-SIM", 1.0)],
        "ES": [("esd", "embshift", 1.0), ("esr", "r@1", 1.0)],  # ES r@1 is already in percent
        "LTM": [("ltm", "r@1", 100.0)],
        "GTM": [("gtm", "r@1", 100.0)],
        "GTT": [("gtt", "retain@4", 100.0)],
    }.get(attack_type, [])


def _type_of(entry: Any, spec: str) -> str:
    try:
        value = _field(entry, "type")
    except (KeyError, AttributeError):
        value = None
    return str(value) if value else re.match(r"\w+?(?=:|$)", spec).group(0)


def raw_scores(results: Iterable[Any] | Mapping[str, Any]) -> dict[str, float | None]:
    """The ten raw scores from attack results (``AttackResult`` objects or results-file entries).

    ``results`` may also be a whole swipe results payload (its ``attacks`` list is used).
    Attacks outside the ten columns (SPQA, say) are ignored; a column filled twice is an error,
    since the ERS of a file mixing two settings of one attack would be meaningless.
    """
    if isinstance(results, Mapping):
        results = results["attacks"]
    raw: dict[str, float | None] = dict.fromkeys(KEYS)
    source: dict[str, str] = {}
    for entry in results:
        spec = str(_field(entry, "spec"))
        adv = _field(entry, "adv")
        for key, metric, factor in _slot(_type_of(entry, spec), spec):
            if raw[key] is not None:
                raise RobrankError(f"both {source[key]!r} and {spec!r} fill the ERS column {LABELS[key]}; ERS needs one result per column (a rob28/rob224 swipe)")
            raw[key] = factor * _metric(adv, metric, spec)
            source[key] = spec
    return raw


def _as_raw(raw: Mapping[str, float | None] | Sequence[float]) -> dict[str, float | None]:
    if isinstance(raw, Mapping):
        unknown = set(raw) - set(KEYS)
        if unknown:
            raise RobrankError(f"unknown raw-score keys {sorted(unknown)}; expected {', '.join(KEYS)}")
        return {k: (None if raw.get(k) is None else float(raw[k])) for k in KEYS}
    values = list(raw)
    if len(values) != len(KEYS):
        raise RobrankError(f"ERS needs {len(KEYS)} raw scores ({', '.join(LABELS.values())}), got {len(values)}")
    return {k: (None if v is None else float(v)) for k, v in zip(KEYS, values)}


def missing(raw: Mapping[str, float | None] | Sequence[float]) -> list[str]:
    """Column labels (CA+, ...) without a score."""
    return [LABELS[k] for k, v in _as_raw(raw).items() if v is None]


def rescale(raw: Mapping[str, float | None] | Sequence[float]) -> dict[str, float | None]:
    """Map each raw score to "0 = broken, 100 = robust" (pjswipe's ``ersnormalize``).

    CA+/QA+ percentiles sit near 50 on a clean model, hence the factor 2; ES:D is divided by
    2, the largest distance on the unit sphere (for the E metric it can exceed 2 and the
    term goes negative, as in the reference).
    """
    r = _as_raw(raw)

    def f(key: str, fn) -> float | None:
        return None if r[key] is None else fn(r[key])

    return {
        "cap": f("cap", lambda v: 2.0 * v),
        "cam": f("cam", lambda v: 100.0 - v),
        "qap": f("qap", lambda v: 2.0 * v),
        "qam": f("qam", lambda v: 100.0 - v),
        "tma": f("tma", lambda v: 100.0 * (1.0 - v)),
        "esd": f("esd", lambda v: 100.0 * (2.0 - v) / 2.0),
        "esr": f("esr", lambda v: v),
        "ltm": f("ltm", lambda v: v),
        "gtm": f("gtm", lambda v: v),
        "gtt": f("gtt", lambda v: v),
    }


def ers(raw: Mapping[str, float | None] | Sequence[float]) -> float:
    """The arithmetic mean of the ten rescaled scores (unrounded; print it with one decimal)."""
    absent = missing(raw)
    if absent:
        raise IncompleteScoresError(f"ERS needs all ten attacks; missing {', '.join(absent)} (finish the swipe: rerun the same robrank swipe command)")
    scaled = rescale(raw)
    return sum(scaled[k] for k in KEYS) / len(KEYS)


def ers_block(results: Iterable[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """The ``ers`` object of a results file: raw and rescaled scores and the score itself."""
    raw = raw_scores(results)
    return {"raw": raw, "rescaled": rescale(raw), "ers": ers(raw)}


__all__ = ["KEYS", "LABELS", "DECIMALS", "IncompleteScoresError", "raw_scores", "rescale", "missing", "ers", "ers_block"]
