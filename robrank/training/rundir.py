"""Run directories: what a training run leaves behind, and how to find one again.

``runs/<dataset>-<backbone>-<loss>[-<defense>]-<YYYYmmdd-HHMMSS>/`` holds ``config.json``
(the resolved config plus the provenance needed to trust a number: versions, git commit,
hardware, device; no host name or absolute path, so it can be published as it is),
``metrics.jsonl`` (one line per validation) and ``checkpoints/last.pt`` (+ ``epoch-<E>.pt``
with ``--keep-epochs``). Everything is written atomically.

``config.json`` has one writer, :func:`write_config`; the ``run`` section that ``robrank
run`` adds (profile, swipe settings, defaults it chose) goes through the same function.

A process working on a run directory holds its lock (:func:`locked`): a second ``train``,
``run`` or ``swipe`` on the same directory refuses at once, naming the holder's PID, instead
of interleaving ``metrics.jsonl`` lines. The lock is an ``flock`` on ``<run>/.lock``, which
the kernel releases when its holder dies, so the lock of a killed process is stale by
construction and the next process takes it over (rewriting the PID in the file).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
import torch

from .. import __version__
from ..errors import CheckpointError, RobrankError, StorageError
from ..io import append_jsonl, read_jsonl, write_json
from ..locks import exclusive
from ..models.checkpoint import CHECKPOINT_DIR, LAST
from ..plugins import Registry
from .config import TrainConfig
from ..hardware import describe

RUNS = Path("runs")
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
LOCK_FILE = ".lock"


def run_name(config: TrainConfig, registry: Registry) -> str:
    """``dataset-backbone-loss[-defense]``; a plain (no-op) defense is left out."""
    parts = [config.dataset, config.backbone, config.loss]
    if config.defense and not _is_plain(config.defense, registry):
        parts.append(config.defense)
    return "-".join(parts)


def _is_plain(defense: str, registry: Registry) -> bool:
    if ("defenses", defense) not in registry:
        return False
    return bool(registry.get("defenses", defense).plain)


def has_checkpoint(run_dir: Path) -> bool:
    return (Path(run_dir) / CHECKPOINT_DIR / LAST).is_file()


def new_run_dir(config: TrainConfig, root: Path = RUNS, *, registry: Registry) -> Path:
    """A fresh ``runs/<name>-<timestamp>`` (suffixed ``-2``, ``-3`` ... if taken)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / f"{run_name(config, registry)}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def latest_run_dir(config: TrainConfig, root: Path = RUNS, *, registry: Registry) -> Path | None:
    """The newest run of the same dataset/backbone/loss/defense that has a checkpoint."""
    if not root.is_dir():
        return None
    prefix = run_name(config, registry) + "-"
    candidates = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix) and has_checkpoint(p)]
    return max(candidates, key=lambda p: (p / CHECKPOINT_DIR / LAST).stat().st_mtime, default=None)


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
    run_dir: Path,
    config: TrainConfig | None = None,
    *,
    device: str | None = None,
    world_size: int | None = None,
    defense_settings: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
) -> None:
    """The one writer of ``config.json``.

    With ``config`` (a run starting): the resolved config, provenance and the defense's
    resolved options (defaults included, so a run says what it trained with even after a
    default changes). With only ``run``: the existing file gains or updates its ``run``
    section and keeps everything else.
    """
    path = Path(run_dir) / CONFIG_FILE
    if config is not None:
        payload: dict[str, Any] = {"config": config.to_dict(), "seed": config.seed, **provenance(str(device), int(world_size or 1))}
        if defense_settings is not None:
            payload["defense_settings"] = defense_settings
    else:
        payload = read_payload(Path(run_dir))
    if run is not None:
        payload["run"] = run
    write_json(path, payload)


def read_payload(run_dir: Path) -> dict[str, Any]:
    """The whole ``config.json`` of a run directory (one-line error when it is missing or damaged)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a robrank run directory (no {CONFIG_FILE})")
    try:
        payload = json.loads(path.read_text())
    except ValueError as exc:
        raise CheckpointError(f"{path} is damaged ({exc}); restore it or start a new run") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} is damaged (not a JSON object); restore it or start a new run")
    return payload


def config_of(payload: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    try:
        return dict(payload["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{Path(run_dir) / CONFIG_FILE} is damaged (no config: {exc}); restore it or start a new run") from exc


def read_config(run_dir: Path) -> dict[str, Any]:
    """The saved training config of a run directory."""
    return config_of(read_payload(run_dir), run_dir)


# ------------------------------------------------------------------------------------ lock


class RunLockedError(RobrankError):
    """Another live process works on this run directory."""


#: run directories this process holds: resolved path -> depth; a command that trains and
#: then swipes takes the lock once, the nested takes are free
_HELD: dict[Path, int] = {}


@contextmanager
def locked(run_dir: str | os.PathLike[str], command: str = "robrank") -> Iterator[Path]:
    """Hold ``run_dir``'s lock for the block; RunLockedError at once if a live process holds it."""
    directory = Path(run_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only disk: refused before any work starts
        raise StorageError(f"cannot create run directory {directory}: {exc.strerror or exc}; choose a writable --run-dir") from None
    key = directory.resolve()
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield directory
        finally:
            _HELD[key] -= 1
        return
    with exclusive(directory / LOCK_FILE, command=command, what="--run-dir") as taken:
        if taken is not None:
            raise RunLockedError(
                f"run directory {directory} is in use by process {taken.get('pid', '?')} "
                f"({taken.get('command', 'robrank')} on {taken.get('host', '?')}); wait for it to finish or stop that process"
            )
        _HELD[key] = 1
        try:
            yield directory
        finally:
            del _HELD[key]


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    append_jsonl(run_dir / METRICS_FILE, record)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    return read_jsonl(run_dir / METRICS_FILE)
