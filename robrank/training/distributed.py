"""Multi-process training: torchrun's environment, ``--devices N`` spawning, per-rank sharding.

``batch_size`` is per process, as in the reference (Lightning DDP): with N processes a step
sees N x batch_size pairs. Every rank draws the *same* epoch permutation (same seed) and
rank r takes rows ``[r*B, (r+1)*B)`` of each global batch of ``N*B`` pairs, so N processes
with batch B follow exactly the single-process run with batch N*B on the same pair order
(DDP averages the gradients of the per-rank mean losses, which is the mean over the global
batch when every rank holds the same number of pairs). To keep that true for the last,
short global batch, the epoch's pairs are padded to a multiple of N by repeating its first
pairs (as torch's DistributedSampler does), and the short batch is split evenly.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: its rank, the number of processes, its local GPU index."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistInfo()


def from_env(env: dict[str, str] | None = None) -> DistInfo:
    """The torchrun (or ``--devices``) environment: RANK, WORLD_SIZE, LOCAL_RANK."""
    env = dict(os.environ) if env is None else env
    world = int(env.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return SINGLE
    rank = int(env.get("RANK", "0"))
    return DistInfo(rank=rank, world_size=world, local_rank=int(env.get("LOCAL_RANK", str(rank))))


def init_process_group(info: DistInfo, device: torch.device) -> None:
    """Join the process group (nccl on CUDA, gloo on CPU); a no-op for one process."""
    if not info.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {}
    if device.type == "cuda":
        kwargs["device_id"] = device
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size, **kwargs)


def destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_gather_object(info: DistInfo, value: Any) -> list[Any]:
    if not info.enabled:
        return [value]

    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, value)
    return out


def broadcast_object(info: DistInfo, value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not info.enabled:
        return value

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard_pairs(pairs: torch.Tensor, batch_size: int, info: DistInfo) -> list[torch.Tensor]:
    """This rank's batches of one epoch's ``pairs`` (P x 2: anchor, partner), in step order."""
    world = info.world_size
    if world > 1 and pairs.shape[0] % world:
        pad = world - pairs.shape[0] % world
        pairs = torch.cat([pairs, pairs[:pad]])
    global_batch = batch_size * world
    batches = []
    for start in range(0, pairs.shape[0], global_batch):
        chunk = pairs[start : start + global_batch]
        per_rank = chunk.shape[0] // world  # equal shares; == batch_size except for the last chunk
        batches.append(chunk[info.rank * per_rank : (info.rank + 1) * per_rank])
    return batches


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(fn: Callable[..., Any], world_size: int, args: tuple[Any, ...] = ()) -> None:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` fresh processes on this machine.

    Each child gets the torchrun variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
    MASTER_PORT) so the code below is the same whether torchrun or ``--devices`` started it.
    """
    port = free_port()
    mp.spawn(_child, args=(world_size, port, fn, args), nprocs=world_size, join=True)


def _child(rank: int, world_size: int, port: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world_size),
            "LOCAL_WORLD_SIZE": str(world_size),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    fn(rank, world_size, *args)


__all__ = [
    "DistInfo",
    "SINGLE",
    "from_env",
    "init_process_group",
    "destroy_process_group",
    "barrier",
    "all_gather_object",
    "broadcast_object",
    "shard_pairs",
    "spawn",
]
