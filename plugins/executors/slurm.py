"""``--executor slurm``: the cells as one Slurm job array, through submitit.

Every cell is one array task (``--gpus-per-job`` GPUs, ``--time-limit`` minutes, on
``--partition``); at most ``-X array_parallelism=N`` run at once. submitit asks Slurm for a
signal shortly before the time limit and on preemption, calls the job's ``checkpoint``
(the cell is marked queued; its finished attacks are on disk already) and requeues it, so a
swipe longer than the time limit continues across requeues (``-X max_num_timeout=N``, 3 by
default). stdout/stderr of every task are under ``SWEEP_DIR/jobs/``.

``-X cluster=local`` or ``-X cluster=debug`` use submitit's local and in-process executors
instead of Slurm: the same code path, for testing on a machine without a scheduler.
"""
from __future__ import annotations

import sys

from robrank.plugin_api import ConfigError, cell_dir, write_json, write_status

from . import SLURM_OPTIONS as OPTIONS  # the -X KEY=VALUE options this executor accepts (declared where it registers)

#: -X key -> submitit parameter (integers are converted)
_PARAMETERS: dict[str, tuple[str, type]] = {
    "account": ("slurm_account", str),
    "qos": ("slurm_qos", str),
    "constraint": ("slurm_constraint", str),
    "exclude": ("slurm_exclude", str),
    "mem_gb": ("mem_gb", int),
    "cpus_per_task": ("cpus_per_task", int),
    "array_parallelism": ("slurm_array_parallelism", int),
    "signal_delay_s": ("slurm_signal_delay_s", int),
    "max_num_timeout": ("slurm_max_num_timeout", int),
}
CLUSTERS = ("slurm", "local", "debug")
#: minutes per job when --time-limit is not given (submitit's own default is a few minutes)
DEFAULT_TIME_LIMIT = 24 * 60
#: CPU cores asked per GPU when -X cpus_per_task is not given (DataLoader workers decoding JPEGs)
CPUS_PER_GPU = 8


class SlurmExecutor:
    def __init__(self, settings) -> None:
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise ConfigError("--executor slurm needs submitit: pip install 'robrank[cluster]'") from None
        self.settings = settings
        self.cluster = settings.options.get("cluster", "slurm")
        if self.cluster not in CLUSTERS:
            raise ConfigError(f"-X cluster={self.cluster}: choose one of {', '.join(CLUSTERS)}")
        self.parameters = self._parameters()

    def _parameters(self) -> dict:
        s = self.settings
        gpus = s.gpus_per_job if s.gpus_per_job is not None else (1 if self.cluster == "slurm" else 0)
        params = {"name": "robrank-sweep", "timeout_min": s.time_limit or DEFAULT_TIME_LIMIT, "nodes": 1, "tasks_per_node": 1,
                  "gpus_per_node": gpus}
        if self.cluster == "slurm":  # image decoding needs cores next to each GPU; Slurm's default is one
            params["cpus_per_task"] = CPUS_PER_GPU * max(1, gpus)
        if s.partition:
            params["slurm_partition"] = s.partition
        if s.jobs:
            params["slurm_array_parallelism"] = s.jobs
        for key, value in s.options.items():
            if key in _PARAMETERS:
                name, kind = _PARAMETERS[key]
                try:
                    params[name] = kind(value)
                except ValueError:
                    raise ConfigError(f"-X {key}={value}: expected an integer") from None
        return params

    def run(self, jobs) -> list:
        """Submit one array task per job; wait for them unless ``--no-wait``. Returns submitit's job handles."""
        import submitit

        folder = self.settings.sweep_dir / "jobs"
        executor = submitit.AutoExecutor(folder=folder, cluster=self.cluster)
        executor.update_parameters(**self.parameters)
        for job in jobs:  # before submitting: a task may start (and say running) at once
            write_status(job.sweep_dir, job.cell_id, state="queued", error=None)
        with executor.batch():
            submitted = [executor.submit(job) for job in jobs]
        for job, handle in zip(jobs, submitted):
            write_json(cell_dir(job.sweep_dir, job.cell_id) / "submission.json",
                       {"executor": "slurm", "cluster": self.cluster, "job_id": handle.job_id, "logs": str(handle.paths.folder)})
            print(f"robrank sweep: {job.cell_id}: submitted as job {handle.job_id}", file=sys.stderr, flush=True)
        if not self.settings.wait:
            return submitted
        for job, handle in zip(jobs, submitted):
            try:
                handle.result()
                word = "done"
            except Exception as exc:  # the cell recorded its error in status.json
                lines = [line for line in str(exc).strip().splitlines() if line.strip()]
                word = f"failed ({lines[-1] if lines else type(exc).__name__})"
            print(f"robrank sweep: {job.cell_id}: {word}", file=sys.stderr, flush=True)
        return submitted


__all__ = ["SlurmExecutor", "OPTIONS"]
