"""``robrank bench --verify CARD``: re-attack a seeded sample of queries and test the card's numbers.

A swipe file keeps each attack's sums, not its per-query outcomes, so a card cannot be
checked query by query against its own record. It does not need to be: the same model, the
same seeds and the same queries give the same per-query outcomes, so the mean over a random
sample estimates the card's full-split mean, and :mod:`.tolerance` bounds how far it may
fall from an honest card's number. Before any attack the verifier checks what needs no
model: the card's own arithmetic (each rescaled column from its raw value, the score as
their mean), the model's tensors against the card's digest, the split against its checksum.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io import write_json
from ..plugins import Registry
from .schema import ROLES, load_card
from .tolerance import Check, column_check, score_check, z_value
from ..runtime import resolve_device
from ..scoring import _type_of, spec_fields
from ..summaries import ENGINE_BOUNDS
from ..summaries import lookup
from ..swipe.schema import registered_bounds
from .bench import _clean_metrics
from .identity import split_digest, tensors_digest

#: clean metrics checked (NMI is one k-means run: its initialisation, not the model, moves it)
CLEAN_CHECKED: tuple[str, ...] = ("R@1", "R@2", "mAP", "mAP@R")


def _profile(card: dict[str, Any], role: str, registry: Registry) -> Any:
    return registry.get("profiles", card["scores"][role]["profile"])


def consistency(card: dict[str, Any], registry: Registry) -> list[Check]:
    """Rows that fail where the card's columns or score do not follow from its raw values."""
    rows: list[Check] = []
    for role in ROLES:
        if role not in card["scores"]:
            continue
        block, score = card["scores"][role], _profile(card, role, registry).score
        by_key = {c.key: c for c in score.columns}
        for column in block["columns"]:
            expected = by_key[column["key"]].rescale(column["raw"])
            if abs(expected - column["rescaled"]) > 1e-6:
                rows.append(Check(f"{block['profile']} {column['label']}", column["rescaled"], expected, 0.0, 0.0,
                                  "inconsistent: the rescaled value does not follow from the raw one"))
        mean = sum(c["rescaled"] for c in block["columns"]) / len(block["columns"])
        if abs(mean - block["value"]) > 1e-6:
            rows.append(Check(f"{block['profile']} {block['name']}", block["value"], mean, 0.0, 0.0,
                              "inconsistent: the score is not the mean of its columns"))
    return rows


def named_target(card: dict[str, Any]) -> Any:
    """What to load: the card's checkpoint, or its --model spec with the same options."""
    model = card["model"]
    if model["kind"] == "run":
        return model["checkpoint"]
    from ..models.external import ModelSpec  # lazy: keeps this module torch-free

    weights = [f"{w['target']}={w['file']}" if w.get("target") else w["file"] for w in model.get("weights", [])]
    first = (model.get("weights") or [{}])[0]
    normalize = (model.get("normalize") or {}).get("name")
    return ModelSpec.create(model["spec"], weights=weights, weights_key=first.get("key"), strip_prefix=first.get("strip_prefix"),
                            metric=model["metric"], normalize=normalize, embedding_dim=model.get("embedding_dim"),
                            gray_to_rgb=bool(model.get("gray_to_rgb")), dataset=card["data"]["dataset"])


def sample_indices(total: int, size: int, seed: int) -> Any:
    """``size`` distinct query indices of ``total``, drawn from ``seed``, sorted."""
    import torch  # lazy: keeps this module torch-free

    generator = torch.Generator().manual_seed(int(seed))
    return torch.randperm(total, generator=generator)[: min(size, total)].sort().values


def column_range(column: Any, registry: Registry) -> tuple[float, float]:
    """The rescaled column's range, from the range its attack declares for the metric it reads."""
    low, high = registered_bounds(column.attack, registry).get(column.metric) or ENGINE_BOUNDS.get(column.metric) or (-math.inf, math.inf)
    if not (math.isfinite(low) and math.isfinite(high)):
        return -math.inf, math.inf  # no finite range: the sample's own spread is used
    ends = [column.rescale(column.factor * low), column.rescale(column.factor * high)]
    return min(ends), max(ends)


def attack_sample(loaded: Any, dataset: Any, record: Any, card: dict[str, Any], indices: Any, device: str,
                  registry: Registry) -> dict[str, dict[str, list[float]]]:
    """Per spec of ``record``, per adversarial summary key: the sampled queries' values, in index order."""
    from ..attacks import Gallery, parse_spec, run_attack  # lazy: keeps this module torch-free
    from ..attacks.runner import AttackOptions, dataset_attack_defaults  # lazy: keeps this module torch-free

    evaluation = card["evaluation"]
    options = AttackOptions(semantics=evaluation["semantics"], seed=int(evaluation["seed"]), device=device,
                            batch_size=evaluation["batch_size"], progress=False, defaults=dataset_attack_defaults(card["data"]["dataset"], registry))
    gallery = Gallery.compute(loaded.model, dataset, batch_size=None, device=device)
    out: dict[str, dict[str, list[float]]] = {}
    for text in record.factory():
        spec = parse_spec(text, registry)
        values: dict[str, list[float]] = {}

        def keep(index: Any, outcome: Any, values: dict[str, list[float]] = values) -> None:
            for key, tensor in outcome.adv.items():
                values.setdefault(key, []).extend(float(v) for v in tensor.detach().reshape(-1).cpu())

        run_attack(loaded.model, dataset, spec, options, gallery=gallery, indices=indices, on_batch=keep, registry=registry)
        out[spec.text] = values
    return out


def sample_checks(card: dict[str, Any], role: str, per_spec: dict[str, dict[str, list[float]]], total: int, z: float,
                  registry: Registry) -> list[Check]:
    """One row per column of the role's score, then the score's row."""
    block, score = card["scores"][role], _profile(card, role, registry).score
    claimed = {c["key"]: c["rescaled"] for c in block["columns"]}
    rows = []
    for column in score.columns:
        spec = next(s for s in per_spec if column.matches(_type_of({}, s), spec_fields(s)))
        n = len(next(iter(per_spec[spec].values())))
        raw = [lookup({k: v[i] for k, v in per_spec[spec].items()}, column.metric) for i in range(n)]
        values = [column.rescale(column.factor * float(v)) for v in raw]
        low, high = column_range(column, registry)
        rows.append(column_check(f"{block['profile']} {column.label}", claimed[column.key], values, low, high, total, z))
    rows.append(score_check(f"{block['profile']} {block['name']}", block["value"], rows))
    return rows


def clean_checks(card: dict[str, Any], target: Any, device: str, data_root: Any, registry: Registry) -> list[Check]:
    """The clean metrics recomputed on the whole split; one query's worth of tolerance (ties on another machine)."""
    clean, _ = _clean_metrics(target, device, data_root, registry)
    slack = 100.0 / card["data"]["queries"] + 1e-6
    return [Check(f"clean {k}", card["clean"][k], clean[k], slack, 0.0) for k in CLEAN_CHECKED if k in card["clean"] and k in clean]


def verify(card_path: str | Path, *, target: Any = None, sample: int = 64, seed: int = 0, confidence: float = 0.999,
           device: str | None = None, data_root: Any = None, record: bool = True, progress: bool = False,
           registry: Registry) -> dict[str, Any]:
    """Check ``card_path`` against its model; the outcome (``passed``, ``verdict``, ``rows``) is also recorded in the card."""
    from ..data.loading import load_split  # lazy: keeps this module torch-free
    from ..models.external import load_any  # lazy: keeps this module torch-free

    card = load_card(card_path)
    if card["draft"]:
        raise ConfigError(f"{card_path} is a draft card ({card['draft_reason']}); verify a full bench's card")
    device = str(resolve_device(device))
    rows = consistency(card, registry)
    loaded = load_any(target if target is not None else named_target(card), device=device, registry=registry)
    problems = []
    if tensors_digest(loaded) != card["model"]["sha256_tensors"]:
        problems.append("the model's tensors differ from the card's (model.sha256_tensors)")
    dataset = load_split(card["data"]["dataset"], "test", data_root=data_root, registry=registry)
    if split_digest(dataset) != card["data"]["sha256"]:
        problems.append("the test split differs from the card's (data.sha256)")
    indices = sample_indices(len(dataset), sample, seed)
    if not problems:
        rows += clean_checks(card, loaded if hasattr(loaded, "model_block") else loaded.checkpoint, device, data_root, registry)
        z = z_value(confidence)
        for role in ROLES:
            if role in card["scores"]:
                per_spec = attack_sample(loaded, dataset, _profile(card, role, registry), card, indices, device, registry)
                rows += sample_checks(card, role, per_spec, len(dataset), z, registry)
    outcome = _outcome(card, rows, problems, len(indices), seed, confidence)
    if record:
        card["verification"] = {k: outcome[k] for k in ("passed", "verdict", "sample", "seed", "confidence", "at", "robrank")}
        write_json(card_path, card)
    return outcome


def _outcome(card: dict[str, Any], rows: list[Check], problems: list[str], n: int, seed: int, confidence: float) -> dict[str, Any]:
    from .. import __version__  # lazy: keeps this module torch-free

    failed = [r for r in rows if not r.passed]
    total = card["data"]["queries"]
    if problems:
        verdict = f"FAILED: {'; '.join(problems)}"
    elif failed:
        named = ", ".join(f"{r.name} (card {r.card:.2f}, sample {r.sample:.2f}{', ' + r.note if r.note else f' ± {r.tolerance:.2f}'})"
                          for r in failed)
        verdict = f"FAILED: {named}"
    else:
        verdict = f"VERIFIED: every number holds on a sample of {n} of {total} queries at {100 * confidence:g}% confidence per column"
    return {"passed": not problems and not failed, "verdict": verdict, "sample": n, "queries": total, "seed": seed,
            "confidence": confidence, "rows": [r.as_dict() for r in rows], "problems": problems,
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "robrank": __version__}


def verify_table(outcome: dict[str, Any]) -> str:
    """The verdict line, then one row per check."""
    lines = [outcome["verdict"], f"{'check':<24} {'card':>8} {'sample':>8} {'diff':>8} {'± tol':>8}  result"]
    for row in outcome["rows"]:
        result = "ok" if row["passed"] else ("FAIL: " + row["note"] if row["note"] else "FAIL")
        lines.append(f"{row['name']:<24} {row['card']:>8.2f} {row['sample']:>8.2f} {row['difference']:>+8.2f} {row['tolerance']:>8.2f}  {result}")
    lines.append(f"sample: {outcome['sample']} of {outcome['queries']} queries (seed {outcome['seed']}); "
                 f"tolerance: z·σ/√n·√((N−n)/(N−1)) + one query, σ bounded from the card's value (docs/bench.md)")
    return "\n".join(lines) + "\n"


__all__ = ["verify", "verify_table", "consistency", "named_target", "sample_indices", "column_range", "CLEAN_CHECKED"]
