"""Evaluating a trained run: the validation of the training loop, from a checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..models.checkpoint import LoadedRun, load_run
from ..runtime import default_num_workers, resolve_device
from .config import TrainConfig
from .engine import embed_split


def evaluate_run(
    run_or_ckpt: str | Path,
    *,
    device: str | None = None,
    batch_size: int | None = None,
    data_root: str | None = None,
    self_exclusion: str = "index",
    num_workers: int | None = None,
    registry: Any | None = None,
) -> tuple[dict[str, float], LoadedRun]:
    """Retrieval metrics of a run (or checkpoint) on its dataset's test split; accuracy for a classifier.

    The run's saved config (in the checkpoint) says what to load; only runtime knobs (device,
    batch size, workers, data root) come from the caller.
    """
    from ..data.loading import dataset_record, load_split
    from ..metrics import classification_metrics, retrieval_metrics
    from ..records import TASK_CLASSIFICATION

    dev = resolve_device(device)
    loaded = load_run(run_or_ckpt, device=dev)
    saved: dict[str, Any] = loaded.config
    record = dataset_record(loaded.dataset, registry)
    test_set = load_split(loaded.dataset, "test", data_root or saved.get("data_root"), augment=False, registry=registry)
    known = {k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__}
    config = TrainConfig.from_dict(known)
    config.val_batch_size = batch_size or config.val_batch_size or 128
    config.num_workers = default_num_workers() if num_workers is None else num_workers
    config.amp = False
    embeddings, labels = embed_split(loaded.model, test_set, config, dev)
    if loaded.task == TASK_CLASSIFICATION:
        return classification_metrics(embeddings, labels), loaded
    metrics = retrieval_metrics(embeddings, labels, loaded.metric, record.test_classes(test_set), self_exclusion=self_exclusion)
    return metrics, loaded
