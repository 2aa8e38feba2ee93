"""Run directories: what a training run leaves behind, and how to find one again.

``runs/<dataset>-<backbone>-<loss>[-<defense>]-<YYYYmmdd-HHMMSS>/`` holds ``config.json``
(the resolved config plus the provenance needed to trust a number: versions, git commit,
hardware, device; no host name or absolute path, so it can be published as it is),
``metrics.jsonl`` (one line per validation) and ``checkpoints/last.pt`` (+ ``epoch-<E>.pt``
with ``--keep-epochs``). Everything is written atomically.
"""
from __future__ import annotations

import datetime as _dt
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..io import append_jsonl, read_jsonl, write_json
from .config import TrainConfig

RUNS = Path("runs")
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"


def run_name(config: TrainConfig) -> str:
    parts = [config.dataset, config.backbone, config.loss]
    if config.defense and config.defense != "none":
        parts.append(config.defense)
    return "-".join(parts)


def new_run_dir(config: TrainConfig, root: Path = RUNS) -> Path:
    """A fresh ``runs/<name>-<timestamp>`` (suffixed ``-2``, ``-3`` ... if taken)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / f"{run_name(config)}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def latest_run_dir(config: TrainConfig, root: Path = RUNS) -> Path | None:
    """The newest run of the same dataset/backbone/loss/defense that has a checkpoint."""
    if not root.is_dir():
        return None
    prefix = run_name(config) + "-"
    candidates = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix) and (p / "checkpoints" / "last.pt").is_file()]
    return max(candidates, key=lambda p: (p / "checkpoints" / "last.pt").stat().st_mtime, default=None)


def git_commit() -> str | None:
    """The commit of the robrank source tree, when it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def provenance(device: str, world_size: int) -> dict[str, Any]:
    import torch

    from .. import __version__
    from ..hardware import describe

    return {
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "robrank": __version__},
        "git_commit": git_commit(),
        "hardware": describe(device),
        "platform": platform.platform(),
        "device": device,
        "world_size": world_size,
        "command": ["robrank", *sys.argv[1:]],  # argv[0] is this machine's path to the script
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def write_config(
    run_dir: Path, config: TrainConfig, device: str, world_size: int, defense_settings: dict[str, Any] | None = None
) -> None:
    """``defense_settings`` are the defense's resolved options, defaults included, so a run
    says what it trained with even after a default changes (e.g. EST's ``pairwise_eps``)."""
    payload = {"config": config.to_dict(), "seed": config.seed, **provenance(device, world_size)}
    if defense_settings is not None:
        payload["defense_settings"] = defense_settings
    write_json(run_dir / CONFIG_FILE, payload)


def read_config(run_dir: Path) -> dict[str, Any]:
    import json

    from ..errors import CheckpointError

    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a robrank run directory (no {CONFIG_FILE})")
    try:
        payload = json.loads(path.read_text())
        return dict(payload["config"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} is damaged ({exc}); restore it or start a new run") from exc


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    append_jsonl(run_dir / METRICS_FILE, record)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    return read_jsonl(run_dir / METRICS_FILE)
