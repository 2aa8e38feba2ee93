"""What a card says about the model, the data, the threat model and the software.

Two digests name a model: the file that was loaded (what a reader downloads) and the tensors
that were actually attacked (what survives a re-save or a format change). A verifier loads
the model the card names and compares the second before it trusts anything else.
"""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

from ..scoring import spec_fields

#: the training settings a card repeats from a robrank run's config (the rest stays in the run)
TRAINING_KEYS: tuple[str, ...] = ("backbone", "loss", "miner", "defense", "defense_options", "embedding_dim", "pretrained",
                                  "epochs", "batch_size", "lr", "optimizer", "seed", "max_steps")


def tensors_digest(loaded: Any) -> str:
    """sha256 of the loaded network's tensors, the same way for a robrank run and a model from elsewhere."""
    if hasattr(loaded, "model_block"):
        return str(loaded.source["sha256"])  # the user's network inside robrank's wrapper
    from ..models.external import state_digest  # lazy: keeps this module torch-free

    return state_digest(loaded.model)


def parameter_count(loaded: Any) -> int:
    return int(sum(p.numel() for p in loaded.model.parameters()))


def model_block(loaded: Any, swiped: dict[str, Any]) -> dict[str, Any]:
    """The card's ``model``: identity, digests, size, metric, normalisation, training settings."""
    from ..models.zoo import zoo_name  # lazy: keeps this module torch-free

    common = {"sha256_tensors": tensors_digest(loaded), "parameters": parameter_count(loaded), "metric": str(loaded.metric)}
    if swiped.get("kind") == "external":
        weights = [{k: w.get(k) for k in ("file", "sha256", "target", "key", "strip_prefix")} for w in swiped.get("weights", [])]
        return {"kind": "external", "name": str(swiped["spec"]), "spec": str(swiped["spec"]), "weights": weights,
                **common, "normalize": swiped.get("normalize"), "gray_to_rgb": bool(swiped.get("gray_to_rgb")),
                "embedding_dim": swiped.get("embedding_dim"), "training": None,
                "defense": None, "backbone": None, "zoo": zoo_name(swiped)}
    config = dict(swiped["config"])
    run = Path(swiped["run_dir"]).name if swiped.get("run_dir") else None
    return {"kind": "run", "name": run or Path(swiped["checkpoint"]).name, "run": run, "checkpoint": str(swiped["checkpoint"]),
            "sha256_file": str(swiped["sha256"]), **common, "normalize": {"name": "inside the backbone"},
            "training": {**{k: config[k] for k in TRAINING_KEYS if k in config}, "epoch": swiped.get("epoch"), "step": swiped.get("step")},
            "defense": config.get("defense"), "backbone": config.get("backbone"), "zoo": None}


def split_digest(dataset: Any, chunk: int = 512) -> str:
    """sha256 of a split's pixels (as the model sees them, float32 in [0, 1]) and labels, in order."""
    import torch  # lazy: keeps this module torch-free

    digest = hashlib.sha256()
    labels = dataset.labels.to("cpu").to(torch.int64).contiguous()
    digest.update(labels.numpy().tobytes())
    for start in range(0, len(dataset), chunk):
        index = torch.arange(start, min(start + chunk, len(dataset)))
        images = dataset.images(index).to("cpu", torch.float32).contiguous()
        digest.update(images.numpy().tobytes())
    return digest.hexdigest()


def data_block(dataset: Any, name: str) -> dict[str, Any]:
    return {"dataset": name, "split": "test", "queries": len(dataset), "gallery": len(dataset),
            "classes": int(dataset.num_classes), "image_size": int(dataset.image_size), "sha256": split_digest(dataset)}


def _one(values: list[Any]) -> Any:
    distinct = sorted(set(values), key=str)
    return distinct[0] if len(distinct) == 1 else distinct


def threat_block(record: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Norm, budget and search of a profile, read from its attack specs (a list where attacks differ)."""
    fields = [spec_fields(spec) for spec in payload["planned"]]
    per_query = {"gradients": 0.0, "forwards": 0.0}
    for attack in payload["attacks"]:
        for key in per_query:
            per_query[key] += float((attack.get("budget") or {}).get(key, 0.0))
    return {
        "profile": record.name,
        "norm": _one([f.get("norm", "inf") for f in fields]),
        "eps": _one([float(f["eps"]) for f in fields if "eps" in f]),
        "alpha": _one([float(f["alpha"]) for f in fields if "alpha" in f]),
        "steps": _one([int(f["pgditer"]) for f in fields if "pgditer" in f]),
        "search": _one([f.get("opt", "pgd") for f in fields]),
        "attacks": len(fields),
        "specs": list(payload["planned"]),
        "pixel_range": "[0, 1]",
        "per_query": per_query if any(a.get("budget") for a in payload["attacks"]) else None,
    }


def git_revision() -> tuple[str | None, bool | None]:
    """The commit of the robrank source tree and whether it has uncommitted changes (None outside a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=False)
        if rev.returncode != 0:
            return None, None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True,
                               timeout=10, check=False)
        return rev.stdout.strip(), bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def software_block(versions: dict[str, Any]) -> dict[str, Any]:
    from .. import __version__  # lazy: keeps this module torch-free

    revision, dirty = git_revision()
    return {"robrank": __version__, "git_revision": revision, "git_dirty": dirty,
            "torch": versions.get("torch"), "python": versions.get("python")}


__all__ = ["model_block", "data_block", "threat_block", "software_block", "split_digest", "tensors_digest", "parameter_count", "git_revision"]
