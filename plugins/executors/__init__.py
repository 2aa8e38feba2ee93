"""The bundled sweep executors: ``local`` (a process pool on this machine) and ``slurm`` (submitit job arrays).

A site with another scheduler registers its own ``ExecutorRecord`` the same way;
``robrank sweep --executor NAME`` then uses it with no change to the core.
"""
from __future__ import annotations

from robrank.plugin_api import ExecutorRecord, hookimpl

from .local import LocalExecutor
from .slurm import OPTIONS as SLURM_OPTIONS, SlurmExecutor


@hookimpl
def register_executors(register):
    register(ExecutorRecord(name="local", factory=LocalExecutor, default=True,
                            summary="cells as processes on this machine: one per GPU (or --gpus-per-job GPUs), a few on a CPU"))
    register(ExecutorRecord(name="slurm", factory=SlurmExecutor, options=SLURM_OPTIONS,
                            summary="a Slurm job array through submitit; requeued on preemption or timeout (needs robrank[cluster])"))
