"""Checkpoints of robrank runs: the file format and loading a trained model back.

A checkpoint holds only tensors and plain data (it is read with ``weights_only=True``, so a
file from an untrusted source cannot run code) and carries the run's resolved config, so
the model is rebuilt from the config rather than from a path parsed with a regex:

``{"format": "robrank-checkpoint", "format_version": 1, "config": {...}, "epoch": E,
"step": S, "epoch_step": s, "model": state_dict, "criterion": state_dict,
"optimizers": [state_dict, ...], "rng": {"torch": ..., "generator": ...}}``

``epoch`` counts completed epochs; ``epoch_step`` > 0 marks a checkpoint taken inside an
epoch (``--checkpoint-every``, ``--max-steps``, Ctrl-C), and then ``rng["generator"]`` is
the sampling state at the start of that epoch so a resumed run replays the same batches.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, UnknownNameError
from ..io import load_checkpoint
from ..plugins import Registry
from ..records import TASK_RETRIEVAL
from .backbone import build_backbone
from .embedding import EmbeddingModel

FORMAT = "robrank-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"


@dataclass
class LoadedRun:
    """A trained model ready for evaluation or attack, with where it came from."""

    model: EmbeddingModel
    config: dict[str, Any]
    dataset: str
    metric: str
    checkpoint: Path
    run_dir: Path | None
    epoch: int = 0
    step: int = 0
    #: what the model is for (``robrank.records.TASKS``), from its backbone's record
    task: str = TASK_RETRIEVAL


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint a path names: a file as is; a run directory -> its latest complete checkpoint."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise CheckpointError(f"{path} does not exist; pass a run directory (runs/...) or a checkpoint .pt file")
    for folder in (path / CHECKPOINT_DIR, path):
        if (folder / LAST).is_file():
            return folder / LAST
        epochs = sorted(folder.glob("epoch-*.pt"), key=_epoch_number)
        if epochs:
            return epochs[-1]
    raise CheckpointError(f"run directory {path} has no checkpoint ({CHECKPOINT_DIR}/{LAST}); train it first or resume it with robrank train --resume")


def _epoch_number(path: Path) -> int:
    try:
        return int(path.stem.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run directory holding ``checkpoint`` (the folder with config.json), if any."""
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        if (folder / "config.json").is_file():
            return folder
    return None


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> tuple[Path, dict[str, Any]]:
    """Load and check the envelope of a robrank checkpoint (format, version, config)."""
    checkpoint = find_checkpoint(path)
    payload = load_checkpoint(checkpoint, map_location=map_location)
    if payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{checkpoint} is not a robrank checkpoint (no format={FORMAT!r} field); for a model trained "
            "elsewhere pass its architecture with --model (MODULE:CALLABLE, timm:NAME, torchvision:NAME) and this "
            "file with --weights, see docs/api.md"
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{checkpoint} has format version {version!r}; this robrank reads up to {FORMAT_VERSION}, upgrade robrank")
    config = payload.get("config")
    missing = [k for k in ("dataset", "backbone", "metric", "embedding_dim") if not isinstance(config, dict) or k not in config]
    if missing:
        raise CheckpointError(f"{checkpoint} lacks config fields {', '.join(missing)}; it was not written by robrank train")
    for key in ("model",):
        if not isinstance(payload.get(key), dict):
            raise CheckpointError(f"{checkpoint} has no {key} state; the file is incomplete")
    return checkpoint, payload


def build_model(config: dict[str, Any], registry: Registry) -> EmbeddingModel:
    """The model a config describes, with fresh weights (no pretrained download)."""
    try:
        backbone = build_backbone(config["backbone"], embedding_dim=int(config["embedding_dim"]), pretrained=None, weights=None,
                                  registry=registry)
    except UnknownNameError as exc:
        raise CheckpointError(
            f"the checkpoint needs backbone {config['backbone']!r}, which no installed plugin provides "
            f"(registered: {', '.join(exc.known) or 'no backbone at all'}); install the plugin that trained it"
        ) from exc
    return EmbeddingModel(backbone, config["metric"])


def fit_error(module: torch.nn.Module, state: Mapping[str, Any], prefix_hint: bool = True) -> str | None:
    """Why ``state`` does not fit ``module`` (first missing/unexpected key, first shape clash), or None."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = lambda t: tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__  # noqa: E731
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s), first {missing[0]!r} (model shape {shape(own[missing[0]])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s), first {unexpected[0]!r} (file shape {shape(state[unexpected[0]])})")
        hint = ""
        head, dot, rest = unexpected[0].partition(".") if unexpected else ("", "", "")
        if prefix_hint and missing and dot and rest in own:
            hint = f" (try --strip-prefix {head}.)"
        return "; ".join(parts) + hint
    for name, value in own.items():
        given = state[name]
        if not isinstance(given, torch.Tensor) or given.shape != value.shape:
            return f"{name!r} has shape {shape(given)} in the file, the model expects {tuple(value.shape)}"
    return None


def load_state(module: torch.nn.Module, state: dict[str, Any], what: str, checkpoint: Path) -> None:
    """``load_state_dict`` with a one-line error naming the first mismatch."""
    problem = fit_error(module, state, prefix_hint=False)
    if problem is not None:
        raise CheckpointError(f"{checkpoint} does not fit the {what}: {problem}; was it trained with another backbone?")
    module.load_state_dict(state, strict=True)


def load_run(path: str | Path, device: str | torch.device = "cpu", *, registry: Registry) -> LoadedRun:
    """A trained model (eval mode, on ``device``) from a run directory or a checkpoint file."""
    checkpoint, payload = read_checkpoint(path)
    config = dict(payload["config"])
    model = build_model(config, registry)
    load_state(model, payload["model"], f"backbone {config['backbone']!r}", checkpoint)
    model.to(device).eval()
    return LoadedRun(
        model=model,
        config=config,
        dataset=str(config["dataset"]),
        metric=str(config["metric"]),
        checkpoint=checkpoint,
        run_dir=run_dir_of(checkpoint),
        epoch=int(payload.get("epoch", 0)),
        step=int(payload.get("step", 0)),
        task=registry.get("backbones", str(config["backbone"])).task,
    )


__all__ = ["LoadedRun", "load_run", "find_checkpoint", "read_checkpoint", "build_model", "load_state", "FORMAT", "FORMAT_VERSION"]
