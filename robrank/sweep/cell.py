"""Run one cell of a sweep: the body of every job, whatever executor started it.

A cell is one ``robrank swipe`` into ``cells/<id>/swipe.json``, which is resumable on its
own, so running a cell again — after a crash, a kill, a preemption or a second ``robrank
sweep`` — continues the swipe instead of starting over. The cell's lock makes a cell run in
at most one process at a time; a job that finds the lock taken (the cell runs elsewhere)
leaves without touching anything.

:class:`CellJob` is what executors schedule: a picklable callable (submitit runs it on a
cluster node) with a ``checkpoint`` method (submitit calls it on preemption or timeout and
requeues what it returns), and ``argv`` for executors that start a process per cell
(``python -m robrank.sweep.cell SWEEP_DIR CELL_ID``).
"""
from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any
import argparse

from ..errors import RobrankError
from ..plugins import Registry, get_registry
from ..runtime import device_name
from .grid import model_spec
from .state import RESULTS, cell_dir, cell_lock, cell_state, now, read_manifest, read_status, whoami, write_status


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, RobrankError) else f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_cell(sweep_dir: str | Path, cell_id: str, *, registry: Registry, devices: int | None = None) -> Path | None:
    """Run (or continue) one cell; returns its results path, or None if it runs elsewhere.

    The outcome is recorded in the cell's ``status.json`` before this returns or raises:
    ``done``, or ``failed`` with a one-line error (a crash's traceback goes to stderr, i.e.
    the job's log).
    """
    manifest = read_manifest(sweep_dir)
    cell = manifest.cell(cell_id)
    settings = manifest.settings
    out = cell_dir(sweep_dir, cell_id) / RESULTS
    with cell_lock(sweep_dir, cell_id) as mine:
        if not mine:
            print(f"robrank sweep: cell {cell_id} is running in another process; leaving it alone", file=sys.stderr)
            return None
        if cell_state(sweep_dir, cell).state == "done":
            return out
        attempt = int(read_status(sweep_dir, cell_id).get("attempt", 0)) + 1
        write_status(sweep_dir, cell_id, state="running", attempt=attempt, started=now(), finished=None, error=None,
                     results=RESULTS, **whoami())
        try:
            _swipe(cell, settings, out, devices or 1, registry)
        except KeyboardInterrupt:
            write_status(sweep_dir, cell_id, state="failed", finished=now(), error="interrupted (Ctrl-C); rerun the sweep to continue")
            raise
        except Exception as exc:
            if not isinstance(exc, RobrankError):
                traceback.print_exc()
            write_status(sweep_dir, cell_id, state="failed", finished=now(), error=_one_line(exc))
            raise
        write_status(sweep_dir, cell_id, state="done", finished=now(), error=None)
    return out


def _swipe(cell: Any, settings: Any, out: Path, devices: int, registry: Registry) -> Path:
    # torch loads when a cell runs, not when an executor plugin registers (robrank --help)
    from ..swipe.distributed import swipe_devices  # lazy: keeps this module torch-free
    from ..swipe.runner import swipe  # lazy: keeps this module torch-free

    device = device_name(settings.device)
    kwargs: dict[str, Any] = dict(output=out, device=device, batch_size=settings.batch_size, max_batches=settings.max_batches,
                                  max_queries=settings.max_queries,
                                  seed=cell.seed, semantics=settings.semantics, data_root=settings.data_root, amp=settings.amp,
                                  channels_last=settings.channels_last, compile=settings.compile, progress=False, registry=registry)
    target = model_spec(cell.target) if cell.source == "model" else cell.target
    if devices > 1:
        return swipe_devices(target, cell.profile, devices, **kwargs)
    return swipe(target, cell.profile, **kwargs)


@dataclass(frozen=True)
class CellJob:
    """One cell as a job: call it to run the cell in this process."""

    sweep_dir: str
    cell_id: str
    devices: int | None = None

    def __call__(self) -> str | None:
        """The job's entry point (in this process, a fresh one or a cluster node): the job pickles
        without plugin code, so it looks up the installed plugins here."""
        out = run_cell(self.sweep_dir, self.cell_id, registry=get_registry(), devices=self.devices)
        return None if out is None else str(out)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's preemption/timeout hook: mark the cell queued and requeue this same job.

        Nothing else needs saving: the swipe saved every finished attack already, and the
        requeued job continues the results file.
        """
        import submitit  # optional: submitit

        if read_status(self.sweep_dir, self.cell_id).get("state") == "running":
            write_status(self.sweep_dir, self.cell_id, state="queued", error=None, requeued=now())
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)

    def argv(self) -> list[str]:
        """The command that runs this cell in a fresh process."""
        extra = [] if self.devices is None else ["--devices", str(self.devices)]
        return [sys.executable, "-m", "robrank.sweep.cell", str(self.sweep_dir), self.cell_id, *extra]

    @property
    def logs(self) -> tuple[Path, Path]:
        """stdout and stderr files for executors that start a process per cell."""
        folder = cell_dir(self.sweep_dir, self.cell_id)
        return folder / "stdout.log", folder / "stderr.log"


def main(argv: list[str] | None = None) -> int:
    """``python -m robrank.sweep.cell SWEEP_DIR CELL_ID [--devices N]``; exit 0 done, 1 failed, 130 interrupted."""
    parser = argparse.ArgumentParser(prog="python -m robrank.sweep.cell", description="Run one cell of a robrank sweep.")
    parser.add_argument("sweep_dir")
    parser.add_argument("cell_id")
    parser.add_argument("--devices", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        CellJob(args.sweep_dir, args.cell_id, args.devices)()
    except KeyboardInterrupt:
        return 130
    except RobrankError as exc:
        print(f"robrank sweep: cell {args.cell_id}: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception:  # recorded in status.json, traceback already on stderr
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["CellJob", "run_cell"]
