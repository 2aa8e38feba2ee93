"""The bundled sweep executors: ``local`` (a process pool on this machine) and ``slurm`` (submitit job arrays).

A site with another scheduler registers its own ``ExecutorRecord`` the same way;
``robrank sweep --executor NAME`` then uses it with no change to the core. The executors
are lazy ``"module:Class"`` references, imported when a sweep uses them.
"""
from __future__ import annotations

from robrank.plugin_api import ExecutorRecord, hookimpl

#: the ``-X KEY=VALUE`` keys the slurm executor takes beyond the common settings
SLURM_OPTIONS: tuple[str, ...] = ("cluster", "account", "qos", "constraint", "mem_gb", "cpus_per_task",
                                  "array_parallelism", "signal_delay_s", "max_num_timeout", "exclude")


@hookimpl
def register_executors(register):
    register(ExecutorRecord(name="local", factory=f"{__name__}.local:LocalExecutor", default=True,
                            summary="cells as processes on this machine: one per GPU (or --gpus-per-job GPUs), a few on a CPU"))
    register(ExecutorRecord(name="slurm", factory=f"{__name__}.slurm:SlurmExecutor", options=SLURM_OPTIONS,
                            summary="a Slurm job array through submitit; requeued on preemption or timeout (needs robrank[cluster])"))
