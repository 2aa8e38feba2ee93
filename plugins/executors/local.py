"""``--executor local``: run the cells as child processes, as many at once as the machine has devices.

One cell per GPU (``--gpus-per-job N``: one per N GPUs, each cell sharding its swipe over
them); on a CPU a bounded number (``--jobs``, default half the cores, at most four), each
child getting an even share of the cores as intra-op threads. A child is a fresh
``python -m robrank.sweep.cell`` process, so a crash in one cell (out of memory, a
segfault in a kernel) is that cell's failure, not the sweep's; each writes its output to
the cell's ``stdout.log`` and ``stderr.log``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from robrank.plugin_api import ConfigError, threads_per_process, usable_cpus

#: at most this many concurrent cells on a CPU unless --jobs says otherwise
CPU_JOBS = 4


def device_slots(gpu_ids: Sequence[str], gpus_per_job: int | None, jobs: int | None, cpus: int) -> list[str | None]:
    """What each concurrent slot runs on: a CUDA_VISIBLE_DEVICES value, or None for the CPU."""
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    if gpu_ids and gpus_per_job != 0:
        per = gpus_per_job or 1
        if per > len(gpu_ids):
            raise ConfigError(f"--gpus-per-job {per} but this machine has {len(gpu_ids)} GPU(s)")
        groups = [",".join(gpu_ids[k * per:(k + 1) * per]) for k in range(len(gpu_ids) // per)]
        return list(groups[: jobs or len(groups)])
    if gpus_per_job:
        raise ConfigError(f"--gpus-per-job {gpus_per_job} but no CUDA GPU is visible")
    return [None] * (jobs or max(1, min(CPU_JOBS, cpus // 2)))


def visible_gpus() -> list[str]:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


class LocalExecutor:
    """A pool of child processes sized to the devices."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.slots = device_slots(visible_gpus(), settings.gpus_per_job, settings.jobs, usable_cpus())

    def run(self, jobs) -> None:
        free = list(range(len(self.slots)))
        queue = list(jobs)
        running: dict[int, tuple[subprocess.Popen, object]] = {}
        threads = str(threads_per_process(len(self.slots)))
        try:
            while queue or running:
                while queue and free:
                    slot, job = free.pop(0), queue.pop(0)
                    running[slot] = (self._start(job, self.slots[slot], threads), job)
                for slot, (proc, job) in list(running.items()):
                    code = proc.poll()
                    if code is not None:
                        del running[slot]
                        free.append(slot)
                        word = "done" if code == 0 else f"failed (exit {code}; see its stderr.log)"
                        print(f"robrank sweep: {job.cell_id}: {word}", file=sys.stderr, flush=True)
                time.sleep(0.2)
        except KeyboardInterrupt:
            for proc, _ in running.values():  # each child saves its finished attacks and exits
                proc.send_signal(signal.SIGINT)
            for proc, _ in running.values():
                proc.wait()
            raise

    def _start(self, job, gpus: str | None, threads: str) -> subprocess.Popen:
        env = dict(os.environ)
        if gpus is None:
            env.setdefault("OMP_NUM_THREADS", threads)
            env["CUDA_VISIBLE_DEVICES"] = ""
        else:
            env["CUDA_VISIBLE_DEVICES"] = gpus
        stdout, stderr = job.logs
        stdout.parent.mkdir(parents=True, exist_ok=True)
        print(f"robrank sweep: {job.cell_id}: started", file=sys.stderr, flush=True)
        with open(stdout, "a") as out, open(stderr, "a") as err:
            return subprocess.Popen(job.argv(), stdout=out, stderr=err, env=env)
