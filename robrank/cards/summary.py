"""The one screen ``robrank bench`` ends with: what was measured, the two scores, the cost, the card."""
from __future__ import annotations

from typing import Any

from .schema import ROLE_TITLES, ROLES

CLEAN_KEYS: tuple[str, ...] = ("R@1", "R@2", "mAP", "mAP@R", "NMI")


def _fmt(value: Any, decimals: int = 1) -> str:
    return "n/a" if value is None else f"{float(value):.{decimals}f}"


def summary(card: dict[str, Any], path: Any = None) -> str:
    """Plain text, at most ~25 lines of 100 characters."""
    data, scores = card["data"], card["scores"]
    lines = []
    if card["draft"]:
        lines.append(f"DRAFT CARD: {card['draft_reason']}; not a benchmark result (rerun without -m/--max-queries)")
    lines.append(f"robrank bench: {card['name']} on {data['dataset']} ({data['split']} split, {data['queries']} queries = gallery)")
    clean = "  ".join(f"{k} {_fmt(card['clean'].get(k))}" for k in CLEAN_KEYS if k in card["clean"])
    lines.append(f"clean (percent, higher is better): {clean}")
    lines.append("scores (0 = broken .. 100 = robust, higher is better):")
    for role in ROLES:
        if role in scores:
            s, threat = scores[role], card["threat_model"][role]
            why = "compare with published numbers" if role == "reference" else "rank by this"
            lines.append(f"  {s['name']} {ROLE_TITLES[role]:<18} {s['profile']:<12} {_fmt(s['value']):>6}   "
                         f"(L{threat['norm']} eps {threat['eps']}, {threat['steps']} steps, {threat['search']}; {why})")
    if all(r in scores for r in ROLES):
        lines.append(f"  gap (reference - worst case)         {scores['reference']['value'] - scores['worst_case']['value']:>6.1f}")
    labels = [c["label"] for c in scores["reference"]["columns"]]
    lines.append("columns, rescaled:   " + " ".join(f"{label:>6}" for label in labels))
    for role in ROLES:
        if role in scores:
            values = {c["label"]: c["rescaled"] for c in scores[role]["columns"]}
            lines.append(f"  {scores[role]['profile']:<18} " + " ".join(f"{_fmt(values.get(label)):>6}" for label in labels))
    cost = card["cost"]
    lines.append(f"cost: {cost['gradients']:,} gradient evaluations, {cost['forwards']:,} forwards, "
                 f"{cost['seconds']['total']:.1f} s on {cost['hardware']}" if cost.get("gradients") is not None
                 else f"cost: {cost['seconds']['total']:.1f} s on {cost['hardware']}")
    if card["draft"]:
        lines.append("DRAFT: the numbers above cover part of the split only")
    if path is not None:
        lines.append(f"card: {path}{' (draft)' if card['draft'] else ''}")
    return "\n".join(lines) + "\n"


__all__ = ["summary"]
