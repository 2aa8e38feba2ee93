"""Evaluating a trained run: the validation of the training loop, from a checkpoint."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..models.checkpoint import LoadedRun
from ..plugins import Registry
from ..runtime import RuntimeOptions, default_num_workers, resolve_device
from .engine import embed_split
from ..data.loading import dataset_record, load_split
from ..metrics import classification_metrics, retrieval_metrics
from ..models.external import load_any
from .plan import saved_plan
from ..records import TASK_CLASSIFICATION


def evaluate_run(
    run_or_ckpt: str | Path | Any,
    *,
    runtime: RuntimeOptions = RuntimeOptions(),
    data_root: str | None = None,
    self_exclusion: str = "index",
    registry: Registry,
) -> tuple[dict[str, float], LoadedRun]:
    """Retrieval metrics of a run (or checkpoint, or an external model's ModelSpec) on its dataset's test split; accuracy for a classifier.

    The run's saved config (in the checkpoint) is planned again (:func:`robrank.plan.saved_plan`);
    only the runtime options (device, the embedding batch size, workers) and the data root come
    from the caller. Evaluation always runs in full precision: the speed flags are not used.
    """
    dev = resolve_device(runtime.device)
    batch_size, num_workers = runtime.batch_size, runtime.num_workers
    loaded = load_any(run_or_ckpt, device=dev, registry=registry)
    if not loaded.config:  # a model from outside robrank: no training config to plan, only the evaluation knobs
        record = dataset_record(loaded.dataset, registry=registry)
        config: Any = SimpleNamespace(val_batch_size=batch_size or 128, amp=False,
                                      num_workers=default_num_workers() if num_workers is None else num_workers)
        test_set = load_split(record.name, "test", data_root, augment=False, registry=registry)
        embeddings, labels = embed_split(loaded.model, test_set, config, dev)
        metrics = retrieval_metrics(embeddings, labels, loaded.metric, record.test_classes(test_set), self_exclusion=self_exclusion)
        return metrics, loaded
    plan = saved_plan(
        loaded.config,
        {"val_batch_size": batch_size, "num_workers": num_workers, "data_root": data_root, "device": str(dev)},
        registry=registry,
    )
    config = plan.config
    if num_workers is None:
        config.num_workers = default_num_workers()
    config.amp = False
    test_set = load_split(plan.dataset.name, "test", config.data_root, augment=False, registry=plan.registry)
    embeddings, labels = embed_split(loaded.model, test_set, config, dev)
    if loaded.task == TASK_CLASSIFICATION:
        return classification_metrics(embeddings, labels), loaded
    metrics = retrieval_metrics(embeddings, labels, loaded.metric, plan.dataset.test_classes(test_set), self_exclusion=self_exclusion)
    return metrics, loaded
