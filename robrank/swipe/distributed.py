"""Multi-process swipes: the query stream sharded across ranks, the shards merged on every rank.

Every query of an attack is independent (its targets are drawn from a hash of the seed and
its *global* index, robrank.attacks.selection), so N processes can each attack a share of
the query batches against the same full gallery and the per-sample sums can be added up
afterwards (:func:`robrank.attacks.merge_results`). Ranks run exactly the batches a single
process would run (same batch size, same composition; rank r takes batches r, r+N, ...),
so every per-sample number is the same bits as in one process and the merged result equals
a single-process swipe with the same seed up to the order of the float64 summation (about
1e-15 relative). With an automatic batch size, the ranks use the smallest automatic size
among them, which on unequal GPUs can differ from a single-process run's: then, as with
any change of batch size, float32 rounding inside a batch differs and PGD's sign steps
can carry it into the third decimal of a metric.

Ranks come from torchrun (``WORLD_SIZE`` > 1 in the environment) or from
:func:`swipe_devices` (``robrank swipe --devices N``), which spawns N processes with the
same variables. The process group is nccl on CUDA (one GPU per rank: ``cuda:LOCAL_RANK``)
and gloo on a CPU. Rank 0 reads and writes the results file; the others only compute.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.multiprocessing import ProcessRaisedException

from ..errors import ConfigError, RobrankError
from ..semantics import REFERENCE
from ..training import distributed as dist_util
from ..training.distributed import DistInfo
from ..models.external import load_any
from ..plugins import Registry, get_registry
from .runner import SwipeBackend, default_output, resolve_profile, swipe
from ..attacks import AttackOptions, auto_batch_size, build_attack, merge_results
from ..runtime import threads_per_process


def rank_device(device: str, info: DistInfo) -> str:
    """``cuda`` -> this rank's GPU (``cuda:LOCAL_RANK``); ``cpu`` stays ``cpu``."""
    parsed = torch.device(device)
    if parsed.type == "cuda" and info.enabled:
        return f"cuda:{info.local_rank}"
    return str(parsed)


def shard(order: torch.Tensor, info: DistInfo, batch_size: int | None = None) -> torch.Tensor:
    """This rank's share of the query indices.

    With ``batch_size`` the queries are cut into the batches a single process would run and
    rank r takes batches r, r + N, r + 2N, ...: every batch is then attacked with exactly the
    same composition as in one process, so each per-sample number is bit-identical (a
    float32 convolution's rounding depends on the batch shape, and PGD's sign steps can
    amplify a last-bit difference). Without it: contiguous, near-equal shares.
    """
    if batch_size is None:
        return torch.tensor_split(order, info.world_size)[info.rank]
    batches = list(order.split(int(batch_size)))[info.rank :: info.world_size]
    return torch.cat(batches) if batches else order[:0]


def distributed_backend(info: DistInfo, base: SwipeBackend | None = None, *, registry: Registry) -> SwipeBackend:
    """``base`` (the default backend) with attacks sharded over the ranks of ``info``.

    The batch size is the one requested, or the smallest automatic size of all ranks, so
    every rank cuts the queries into the same batches; with ``max_batches`` the queries are
    the first ``batch_size x max_batches`` images, as in a single-process swipe.
    """
    base = base or SwipeBackend.default(registry)
    if not info.enabled:
        return base

    def run_attack(model: Any, dataset: Any, spec: Any, options: Any = None, **kwargs: Any) -> Any:
        options = options or AttackOptions()
        batch_size, indices = options.batch_size, kwargs.pop("indices", None)
        order = torch.arange(len(dataset)) if indices is None else torch.as_tensor(indices, dtype=torch.int64).view(-1)
        if batch_size is None:
            attack = build_attack(spec, options, registry=registry)
            device = torch.device(options.device)
            local = auto_batch_size(model.to(device), dataset, kwargs["gallery"].to(device), attack, device)
            batch_size = min(dist_util.all_gather_object(info, int(local)))
        if options.max_queries is not None:
            order = order[: int(options.max_queries)]
        if options.max_batches is not None:
            order = order[: int(batch_size) * int(options.max_batches)]
        mine = shard(order, info, batch_size)
        result = base.run_attack(model, dataset, spec, options=options.replace(batch_size=batch_size, max_batches=None, max_queries=None),
                                 indices=mine, **kwargs)
        results = dist_util.all_gather_object(info, result)
        merged = merge_results(results)
        merged.seconds = max(r.seconds for r in results)  # wall time: the slowest rank
        return merged

    return dataclasses.replace(
        base,
        run_attack=run_attack,
        rank=info.rank,
        world_size=info.world_size,
        broadcast=lambda value: dist_util.broadcast_object(info, value),
    )


def swipe_ranked(run_or_ckpt: str | Path, profile: str, *, registry: Registry, device: str = "cpu", info: DistInfo | None = None,
                 **kwargs: Any) -> Path:
    """Run this process's part of a swipe under torchrun-style variables (a plain swipe if one process).

    Joins the process group (and leaves it afterwards if it joined), picks this rank's GPU,
    and returns the results path (written by rank 0).
    """
    info = dist_util.from_env() if info is None else info
    if not info.enabled:
        return swipe(run_or_ckpt, profile, registry=registry, device=device, **kwargs)
    device = rank_device(device, info)
    parsed = torch.device(device)
    if parsed.type == "cuda":
        torch.cuda.set_device(parsed)

    joined = not dist.is_initialized()
    dist_util.init_process_group(info, parsed)
    try:
        backend = distributed_backend(info, kwargs.pop("backend", None), registry=registry)
        return swipe(run_or_ckpt, profile, registry=registry, device=device, backend=backend, **kwargs)
    finally:
        if joined:
            dist_util.destroy_process_group()


def swipe_devices(run_or_ckpt: str | Path, profile: str, devices: int, *, registry: Registry, device: str = "cpu", **kwargs: Any) -> Path:
    """``robrank swipe --devices N``: N spawned processes (one per GPU, or gloo on a CPU).

    Returns the results path once every process has finished. On a CPU each process gets
    an even share of the usable CPUs as intra-op threads so the processes do not oversubscribe the cores.
    """
    if devices < 1:
        raise ConfigError(f"--devices must be at least 1, got {devices}")
    if devices == 1:
        return swipe(run_or_ckpt, profile, registry=registry, device=device, **kwargs)
    if torch.device(device).type == "cuda" and torch.cuda.device_count() < devices:
        raise ConfigError(f"--devices {devices} but only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    output = kwargs.pop("output", None)
    if output is None:  # resolve the default path here, where the caller can see it
        loaded = load_any(run_or_ckpt, device="cpu", registry=registry)
        options = kwargs.get("options")
        semantics = kwargs.get("semantics", options.semantics if options is not None else REFERENCE)
        output = default_output(run_or_ckpt, loaded, resolve_profile(profile, registry).name, semantics)

    threads = threads_per_process(devices)
    try:
        dist_util.spawn(_worker, devices, (run_or_ckpt if not isinstance(run_or_ckpt, Path) else str(run_or_ckpt), profile, device, str(output), threads, kwargs))
    except Exception as exc:  # a child's traceback: surface its last line as a one-line error

        if not isinstance(exc, ProcessRaisedException):
            raise
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        raise RobrankError(f"a swipe process failed: {lines[-1] if lines else exc}") from None
    return Path(output)


def _worker(rank: int, world_size: int, run_or_ckpt: Any, profile: str, device: str, output: str, threads: int,
            kwargs: dict[str, Any]) -> None:
    """One spawned process: a new interpreter, so an entry point that loads the installed plugins itself
    (the parent's registry holds plugin code that need not pickle)."""
    if torch.device(device).type == "cpu":
        torch.set_num_threads(threads)
    swipe_ranked(run_or_ckpt, profile, device=device, output=output, registry=get_registry(), **kwargs)


__all__ = ["distributed_backend", "shard", "rank_device", "swipe_ranked", "swipe_devices"]
