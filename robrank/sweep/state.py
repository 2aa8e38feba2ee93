"""The sweep directory: its manifest, one folder per cell, and what state each cell is in.

::

    SWEEP_DIR/
      sweep.json                the grid's cells and the swipe settings they share
      cells/<cell-id>/
        swipe.json              the cell's results (a plain robrank swipe file)
        status.json             state, attempt, host, times, the last error
        lock                    held (flock) while a process runs the cell
        stdout.log, stderr.log  the local executor's logs (Slurm's go to SWEEP_DIR/jobs/)
      report.txt, report.md     the combined report of the finished cells

Only the process that holds a cell's lock writes its folder, and the lock dies with the
process, so the state needs no heartbeat: a status that says ``running`` while nobody holds
the lock is a cell whose process was killed (or preempted) — it is shown as failed and the
next run of the sweep restarts it, continuing its results file.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import RobrankError
from ..locks import exclusive, held
from ..io import write_json
from .grid import RUNTIME_SETTINGS, Cell, SwipeSettings

SCHEMA = "robrank-sweep"
SCHEMA_VERSION = 1
MANIFEST = "sweep.json"
RESULTS = "swipe.json"
STATUS = "status.json"
LOCK = "lock"
#: every state a cell can be in; ``queued`` is submitted to a scheduler and not started yet
STATES: tuple[str, ...] = ("pending", "queued", "running", "done", "failed")
LOST = "stopped without finishing (killed, preempted or out of time); rerun the sweep to continue it"


class SweepError(RobrankError):
    """A sweep directory that cannot be used as asked."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def cell_dir(sweep_dir: str | Path, cell_id: str) -> Path:
    return Path(sweep_dir) / "cells" / cell_id


# ---- manifest -------------------------------------------------------------------------------


@dataclass
class Manifest:
    cells: list[Cell]
    settings: SwipeSettings
    created: str

    def cell(self, cell_id: str) -> Cell:
        for c in self.cells:
            if c.id == cell_id:
                return c
        raise SweepError(f"the sweep has no cell {cell_id!r}; robrank sweep --status DIR lists its cells")

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "created": self.created,
                "swipe": self.settings.as_dict(), "cells": [c.as_dict() for c in self.cells]}


def read_manifest(sweep_dir: str | Path) -> Manifest:
    path = Path(sweep_dir) / MANIFEST
    if not path.is_file():
        raise SweepError(f"{sweep_dir} is not a sweep directory (no {MANIFEST}); start one with robrank sweep RUN... -p PROFILE --dir {sweep_dir}")
    try:
        data = json.loads(path.read_text())
        if data.get("schema") != SCHEMA:
            raise ValueError("not a robrank sweep manifest")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"schema_version {data.get('schema_version')!r} is not supported")
        return Manifest(cells=[Cell.from_dict(c) for c in data["cells"]], settings=SwipeSettings.from_dict(data["swipe"]),
                        created=str(data["created"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise SweepError(f"{path} is not a readable sweep manifest ({exc}); use another --dir") from None


def update_manifest(sweep_dir: str | Path, cells: list[Cell], settings: SwipeSettings) -> Manifest:
    """Create the manifest, or add ``cells`` to an existing one with the same settings."""
    path = Path(sweep_dir) / MANIFEST
    if path.exists():
        manifest = read_manifest(sweep_dir)
        old, new = manifest.settings.as_dict(), settings.as_dict()
        for key in old:
            if key not in RUNTIME_SETTINGS and old[key] != new[key]:
                raise SweepError(f"{sweep_dir} holds a sweep with {key}={old[key]!r}, not {new[key]!r}; "
                                 f"use another --dir, or the same settings to continue it")
        known = {c.id for c in manifest.cells}
        manifest.cells += [c for c in cells if c.id not in known]
        manifest.settings = settings  # runtime settings (device, data root) as given this time
    else:
        manifest = Manifest(cells=list(cells), settings=settings, created=now())
    write_json(path, manifest.as_dict())
    return manifest


# ---- cell status and lock -------------------------------------------------------------------


def read_status(sweep_dir: str | Path, cell_id: str) -> dict[str, Any]:
    path = cell_dir(sweep_dir, cell_id) / STATUS
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return {}
    except ValueError:  # written atomically, so only a hand-edited file gets here
        return {"state": "failed", "error": f"{path} is not valid JSON"}


def write_status(sweep_dir: str | Path, cell_id: str, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into the cell's status file (atomic write)."""
    status = read_status(sweep_dir, cell_id)
    status.update(fields, cell=cell_id, updated=now())
    write_json(cell_dir(sweep_dir, cell_id) / STATUS, status)
    return status


@contextlib.contextmanager
def cell_lock(sweep_dir: str | Path, cell_id: str, wait: float = 2.0) -> Iterator[bool]:
    """Hold the cell's lock for the block; yields False if another process holds it.

    ``--status`` probes the lock for an instant, so a worker retries for ``wait`` seconds
    before it concludes the cell runs elsewhere.
    """
    path = cell_dir(sweep_dir, cell_id) / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path, command=f"robrank sweep cell {cell_id}", wait=wait, what="sweep directory") as taken:
        yield taken is None


def lock_held(sweep_dir: str | Path, cell_id: str) -> bool:
    """Whether a live process holds the cell's lock (a shared, instant probe)."""
    return held(cell_dir(sweep_dir, cell_id) / LOCK)


def whoami() -> dict[str, Any]:
    """Where a cell runs: host, pid, and the scheduler's job id when there is one."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job and "SLURM_ARRAY_TASK_ID" in os.environ else os.environ.get("SLURM_JOB_ID")
    job = job or os.environ.get("SUBMITIT_LOCAL_JOB_ID")
    return {"host": socket.gethostname(), "pid": os.getpid(), "job": job}


# ---- what --status shows --------------------------------------------------------------------


@dataclass(frozen=True)
class CellState:
    cell: Cell
    state: str
    attacks_done: int
    attacks_planned: int | None
    error: str | None
    status: dict[str, Any]

    @property
    def results(self) -> str:
        return self.status.get("results", RESULTS)


def cell_state(sweep_dir: str | Path, cell: Cell) -> CellState:
    status = read_status(sweep_dir, cell.id)
    done, planned, finished = _progress(cell_dir(sweep_dir, cell.id) / RESULTS)
    state, error = status.get("state", "pending"), status.get("error")
    if state == "running" and not lock_held(sweep_dir, cell.id):
        state, error = "failed", LOST
    if state == "done" and not finished:  # results file removed or replaced by hand
        state, error = "failed", f"marked done but {RESULTS} is missing or unfinished; rerun the sweep"
    if state not in STATES:
        state, error = "failed", f"unknown state {state!r} in {STATUS}"
    return CellState(cell, state, done, planned, error if state == "failed" else None, status)


def _progress(results: Path) -> tuple[int, int | None, bool]:
    try:
        data = json.loads(results.read_text())
        return len(data.get("attacks", [])), len(data.get("planned", [])), data.get("finished") is not None
    except (OSError, ValueError):
        return 0, None, False


def sweep_states(sweep_dir: str | Path) -> list[CellState]:
    return [cell_state(sweep_dir, c) for c in read_manifest(sweep_dir).cells]


def format_status(states: list[CellState]) -> str:
    """The ``--status`` table: one line per cell, then the counts per state."""
    head = ["cell", "state", "attacks", "attempt", "error"]
    rows = [[s.cell.id, s.state, f"{s.attacks_done}/{s.attacks_planned if s.attacks_planned is not None else '?'}",
             str(s.status.get("attempt", 0)), s.error or ""] for s in states]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in [head, ["-" * w for w in widths], *rows]]
    counts = {name: sum(s.state == name for s in states) for name in STATES}
    lines.append(f"{len(states)} cell(s): " + ", ".join(f"{n} {name}" for name, n in counts.items() if n or name in ("done", "failed")))
    return "\n".join(lines) + "\n"


__all__ = ["Manifest", "CellState", "SweepError", "read_manifest", "update_manifest", "read_status", "write_status", "cell_lock",
           "lock_held", "cell_state", "sweep_states", "format_status", "cell_dir", "STATES", "RESULTS"]
