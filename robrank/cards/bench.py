"""``robrank bench``: the one recommended evaluation of a ranking model, ending in a model card.

A bench is two swipes and a clean evaluation on the full test split: the dataset's reference
profile (its numbers compare with published ERS) and the worst-case variant of that profile
(the number to rank by). It is made of swipes so that it resumes like one: every attack is
saved as it finishes, and rerunning the same command continues. The card is written only
from complete evaluations; ``max_batches``/``max_queries`` give a draft card, marked as one.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from datetime import datetime, timezone

from ..errors import ConfigError, RobrankError
from ..io import write_json
from ..plugins import Registry
from .identity import data_block, model_block, software_block, threat_block
from .schema import ROLES, SCHEMA, SCHEMA_VERSION, validate
from ..hardware import describe
from ..runtime import RuntimeOptions, resolve_device
from ..swipe.schema import forced_note
from ..swipe.schema import load_results
from ..swipe.schema import partial_note

CARD_FILE = "card.json"


class BenchError(RobrankError):
    """An evaluation that cannot become a card (partial, forced, or mixed settings)."""


@dataclass(frozen=True)
class BenchProfiles:
    """The two profiles of a bench: the dataset's reference and its declared worst-case variant."""

    reference: Any
    worst_case: Any

    def by_role(self) -> dict[str, Any]:
        return {"reference": self.reference, "worst_case": self.worst_case}


def bench_profiles(dataset: str, registry: Registry) -> BenchProfiles:
    """The dataset's reference profile and the one registered variant of it marked ``worst_case``."""
    from ..data.loading import dataset_record  # lazy: keeps this module torch-free
    from ..swipe.runner import profile_for_dataset  # lazy: keeps this module torch-free

    reference = profile_for_dataset(dataset_record(dataset, registry=registry), registry)
    variants = [c.record for c in registry.components("profiles")
                if c.record.variant_of == reference.name and getattr(c.record, "worst_case", False)]
    if len(variants) != 1:
        found = f" ({', '.join(v.name for v in variants)})" if variants else ""
        raise ConfigError(f"profile {reference.name!r} of dataset {dataset!r} has {len(variants)} worst-case variants{found}; "
                          "robrank bench needs exactly one (ProfileRecord(variant_of=..., worst_case=True))")
    if reference.score is None or variants[0].score is None:
        raise ConfigError(f"robrank bench needs scored profiles; {reference.name!r} or {variants[0].name!r} defines no score")
    return BenchProfiles(reference, variants[0])


def default_output(loaded: Any, draft: bool) -> Path:
    """``<run>/bench`` for a run, ``<ckpt>.bench`` for a checkpoint, beside a --model's file otherwise; drafts get ``-draft``."""
    suffix = "bench-draft" if draft else "bench"
    if hasattr(loaded, "model_block"):
        from ..models.external import default_results_name  # lazy: keeps this module torch-free

        return default_results_name(loaded, suffix)
    if loaded.run_dir is not None:
        return Path(loaded.run_dir) / suffix
    checkpoint = Path(loaded.checkpoint)
    return checkpoint.with_name(f"{checkpoint.name}.{suffix}")


def _forced(payload: dict[str, Any]) -> str | None:
    """The swipe's note when it ran a profile forced on other images (``--force``), else None."""
    return forced_note(payload)


def _score_block(record: Any, payload: dict[str, Any]) -> dict[str, Any]:
    score = record.score
    raw = score.raw_scores(payload)
    rescaled = score.rescale(raw)
    columns = [{"key": c.key, "label": c.label, "raw": raw[c.key], "rescaled": rescaled[c.key]} for c in score.columns]
    block = {"profile": record.name, "name": score.name, "value": score.value(raw), "columns": columns,
             "unit": "0 (broken) .. 100 (robust), higher is better"}
    winners = score.winners(payload)
    if winners:
        block["winners"] = winners
    return block


def _cost(payloads: dict[str, dict[str, Any]], clean_seconds: float, device: str | None) -> dict[str, Any]:
    gradients = forwards = 0.0
    for payload in payloads.values():
        for attack in payload["attacks"]:
            budget = attack.get("budget") or {}
            gradients += float(budget.get("gradients", math.nan)) * attack["count"]
            forwards += float(budget.get("forwards", math.nan)) * attack["count"]
    seconds = {role: float(p["timings"]["total_seconds"]) for role, p in payloads.items()}
    return {
        "gradients": None if math.isnan(gradients) else int(round(gradients)),
        "forwards": None if math.isnan(forwards) else int(round(forwards)),
        "seconds": {**seconds, "clean": clean_seconds, "total": clean_seconds + sum(seconds.values())},
        "hardware": describe(device),
        "device": str(next(iter(payloads.values()))["device"]),
    }


def _clean_metrics(target: Any, device: str | None, data_root: Any, registry: Registry) -> tuple[dict[str, float], float]:
    """The clean retrieval metrics on the whole test split, in percent."""
    from ..metrics import REPORTED_KEYS, in_percent  # lazy: keeps this module torch-free
    from ..training.evaluate import evaluate_run  # lazy: keeps this module torch-free

    started = time.perf_counter()
    metrics, _ = evaluate_run(target, runtime=RuntimeOptions.of(device=device), data_root=data_root, registry=registry)
    shown = (*REPORTED_KEYS, "accuracy")
    return {k: float(v) for k, v in in_percent(metrics).items() if k in shown}, time.perf_counter() - started


def _check_complete(payloads: dict[str, dict[str, Any]], draft: bool) -> str | None:
    """The partial-coverage note of a draft (None for a full bench); a full bench that is partial or forced is refused."""
    notes = []
    for role, payload in payloads.items():
        if _forced(payload):
            raise BenchError(f"the {payload['profile']} swipe is {_forced(payload)}; a card is never written from a forced evaluation")
        note = partial_note(payload)
        if note and not draft:
            raise BenchError(f"the {payload['profile']} swipe is a partial result ({note}); rerun robrank bench to finish it")
        if note:
            notes.append(f"{payload['profile']}: {note}")
    return "; ".join(notes) or None


def build_card(loaded: Any, profiles: BenchProfiles, payloads: dict[str, dict[str, Any]], clean: dict[str, float],
               clean_seconds: float, *, draft: bool, out_dir: Path, device: str | None, dataset: Any, name: str | None) -> dict[str, Any]:
    """The card of a finished bench (see docs/bench.md for every field)."""
    partial = _check_complete(payloads, draft)
    first = payloads["reference"]
    records = profiles.by_role()
    model = model_block(loaded, first["model"])  # once: its tensor digest hashes every weight
    card: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "draft": draft,
        "draft_reason": (f"partial evaluation: {partial}" if partial else "evaluated with a query limit") if draft else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "name": name or model["name"],
        "model": model,
        "data": data_block(dataset, first["dataset"]),
        "evaluation": {
            "semantics": first["semantics"], "seed": first["seed"], "batch_size": first["batch_size"], "max_batches": first["max_batches"],
            "max_queries": first.get("max_queries"),
            "queries": min(p["coverage"]["queries"] for p in payloads.values()), "partial": partial,
            "files": {role: _relative(Path(payloads[role]["_path"]), out_dir) for role in payloads},
        },
        "threat_model": {role: threat_block(records[role], payloads[role]) for role in payloads},
        "clean": clean,
        "clean_unit": "percent, higher is better",
        "scores": {role: _score_block(records[role], payloads[role]) for role in ROLES if role in payloads},
        "cost": _cost(payloads, clean_seconds, device),
        "software": software_block(first["versions"]),
        "verification": None,
    }
    validate(card)
    return card


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path.resolve())


def bench(
    target: Any,
    *,
    output: str | Path | None = None,
    runtime: RuntimeOptions = RuntimeOptions(),
    max_batches: int | None = None,
    max_queries: int | None = None,
    seed: int = 0,
    data_root: str | Path | None = None,
    restart: bool = False,
    progress: bool = True,
    name: str | None = None,
    registry: Registry,
) -> tuple[Path, dict[str, Any]]:
    """Run the recommended evaluation of ``target`` and write its card; return ``(card path, card)``.

    ``target`` is a run directory, a checkpoint, a :class:`~robrank.models.external.ModelSpec`
    or an already loaded model (what :func:`robrank.bench` hands over). The swipes go to
    ``output`` (a folder; default :func:`default_output`) as ``swipe-<profile>.json`` and
    resume there; ``card.json`` is written last, atomically. Of the ``runtime`` options the
    device and the attack batch size apply (neither changes a number); a bench runs in full
    precision.
    """
    from ..models.external import load_any  # lazy: keeps this module torch-free
    from ..training.rundir import locked  # lazy: keeps this module torch-free

    if max_queries is not None and max_batches is not None:
        raise ConfigError("give --max-queries or --max-batches, not both")
    draft = max_batches is not None or max_queries is not None
    runtime = runtime.with_device(str(resolve_device(runtime.device)))
    loaded = load_any(target, device=runtime.device, registry=registry)
    profiles = bench_profiles(str(loaded.dataset), registry)
    out_dir = Path(output) if output is not None else default_output(loaded, draft)
    with locked(out_dir, "robrank bench"):  # a second bench of the same folder is refused at once
        return _bench_into(out_dir, loaded, profiles, draft=draft, seed=seed, runtime=runtime, max_batches=max_batches,
                           max_queries=max_queries, data_root=data_root, restart=restart, progress=progress, name=name, registry=registry)


def _bench_into(out_dir: Path, loaded: Any, profiles: BenchProfiles, *, draft: bool, seed: int, runtime: RuntimeOptions,
                max_batches: int | None, max_queries: int | None, data_root: Any, restart: bool, progress: bool, name: str | None,
                registry: Registry) -> tuple[Path, dict[str, Any]]:
    from ..data.loading import load_split  # lazy: keeps this module torch-free
    from ..swipe.runner import swipe  # lazy: keeps this module torch-free

    swipe_target = loaded if hasattr(loaded, "model_block") else loaded.checkpoint
    payloads: dict[str, dict[str, Any]] = {}
    for role, record in profiles.by_role().items():
        path = swipe(swipe_target, record.name, output=out_dir / f"swipe-{record.name}.json", seed=seed, batch_size=runtime.batch_size,
                     max_batches=max_batches, max_queries=max_queries, device=runtime.device, data_root=data_root, restart=restart,
                     progress=progress, registry=registry)
        payloads[role] = {**load_results(path, registry), "_path": str(path)}
    clean, clean_seconds = _clean_metrics(swipe_target, runtime.device, data_root, registry)
    dataset = load_split(str(loaded.dataset), "test", data_root=data_root, registry=registry)
    card = build_card(loaded, profiles, payloads, clean, clean_seconds, draft=draft, out_dir=out_dir, device=runtime.device,
                      dataset=dataset, name=name)
    path = out_dir / CARD_FILE
    write_json(path, card)
    return path, card


__all__ = ["bench", "bench_profiles", "build_card", "BenchError", "BenchProfiles", "CARD_FILE", "default_output"]
