"""Cards of results robrank measured before ``robrank bench`` existed (docs/results), marked as such.

They say what the stored files hold and nothing more: the reference score from the stored
swipe, the worst case only where a finished worst-case swipe of the same checkpoint is
stored (else the card has none: a missing measurement is never filled in), the clean metrics
of the checkpoint's epoch from the run's metrics.jsonl. No weights are at hand, so the
tensor digest and parameter count are null and the card can never be verified.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..plugins import Registry
from ..swipe.schema import load_results, partial_note
from .bench import _score_block
from .identity import TRAINING_KEYS, threat_block
from .schema import SCHEMA, SCHEMA_VERSION, validate


def _clean_at(run_dir: Path, step: int | None) -> dict[str, float]:
    """The run's logged test metrics at the checkpoint's step (percent)."""
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        return {}
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    from ..metrics import REPORTED_KEYS, in_percent  # lazy: keeps this module torch-free

    rows = [r for r in rows if step is None or r.get("step") == step] or rows[-1:]
    return {k: float(v) for k, v in in_percent(rows[-1]).items() if k in REPORTED_KEYS}


def stored_card(run_dir: str | Path, reference: str = "swipe-rob28.json", worst_case: str = "swipe-rob28-aa.json", name: str | None = None,
                *, registry: Registry) -> dict[str, Any]:
    """A ``reported`` card from a stored run folder's swipe files (only finished, full swipes count)."""
    run_dir = Path(run_dir)
    payloads = {"reference": load_results(run_dir / reference, registry)}
    if (run_dir / worst_case).is_file():
        worst = load_results(run_dir / worst_case, registry)
        if worst.get("ers") and not partial_note(worst) and worst["model"]["sha256"] == payloads["reference"]["model"]["sha256"]:
            payloads["worst_case"] = worst
    for role, payload in payloads.items():
        if partial_note(payload) or not payload.get("ers"):
            raise ValueError(f"{run_dir / reference}: not a finished full swipe")
    records = {role: registry.get("profiles", p["profile"]) for role, p in payloads.items()}
    first = payloads["reference"]
    model, config = first["model"], first["model"]["config"]
    return _validated({
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "draft": False, "draft_reason": None, "created": first["finished"],
        "name": name or run_dir.name,
        "model": {"kind": "run", "name": name or run_dir.name, "run": run_dir.name, "checkpoint": Path(model["checkpoint"]).name,
                  "sha256_file": model["sha256"], "sha256_tensors": None, "parameters": None, "metric": config.get("metric"),
                  "normalize": {"name": "inside the backbone"},
                  "training": {**{k: config[k] for k in TRAINING_KEYS if k in config}, "epoch": model.get("epoch"), "step": model.get("step")},
                  "defense": config.get("defense"), "backbone": config.get("backbone")},
        "data": {"dataset": first["dataset"], "split": "test", "queries": first["queries"], "gallery": first["queries"], "sha256": None},
        "evaluation": {"semantics": first["semantics"], "seed": first["seed"], "batch_size": first["batch_size"], "max_batches": None,
                       "queries": first["queries"], "partial": None, "source": "stored swipe files (docs/results), not robrank bench",
                       "files": {role: (reference if role == "reference" else worst_case) for role in payloads}},
        "threat_model": {role: threat_block(records[role], payloads[role]) for role in payloads},
        "clean": _clean_at(run_dir, model.get("step")), "clean_unit": "percent, higher is better",
        "scores": {role: _score_block(records[role], payloads[role]) for role in payloads},
        "cost": {"gradients": None, "forwards": None, "seconds": {role: p["timings"]["total_seconds"] for role, p in payloads.items()},
                 "hardware": None, "device": first["device"]},
        "software": {"robrank": first["versions"].get("robrank"), "git_revision": None, "git_dirty": None,
                     "torch": first["versions"].get("torch"), "python": first["versions"].get("python")},
        "verification": None,
    })


def _validated(card: dict[str, Any]) -> dict[str, Any]:
    validate(card)
    return card


__all__ = ["stored_card"]
