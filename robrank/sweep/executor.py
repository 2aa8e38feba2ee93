"""The executor interface: what ``robrank sweep --executor NAME`` asks of a plugin.

An executor gets the cells still to run as :class:`~robrank.sweep.cell.CellJob` objects
and runs them — in local processes, as a Slurm job array, or anywhere else a plugin can
reach. It never records outcomes itself: each job writes its own cell's status, which is
what makes any executor's sweep idempotent and readable by ``--status``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError
from ..plugins import Registry
from .cell import CellJob


@dataclass(frozen=True)
class ExecutorSettings:
    """The common executor settings of ``robrank sweep`` plus the plugin's own ``-X KEY=VALUE`` options.

    ``jobs``: cells run at once (None: the executor decides from the devices); ``gpus_per_job``:
    GPUs given to each cell (0: CPU only, None: the executor's default); ``time_limit``:
    minutes per job; ``wait``: block until every job has ended.
    """

    sweep_dir: Path
    jobs: int | None = None
    partition: str | None = None
    gpus_per_job: int | None = None
    time_limit: int | None = None
    wait: bool = True
    options: Mapping[str, str] = field(default_factory=dict)


class Executor(Protocol):
    """Runs cell jobs; returns once they have ended (or, with ``wait=False``, once submitted)."""

    def run(self, jobs: Sequence[CellJob]) -> None: ...


def parse_options(pairs: Sequence[str]) -> dict[str, str]:
    """``-X KEY=VALUE`` pairs as a dict (a malformed pair is a one-line error)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"executor option {pair!r} is not KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def build_executor(name: str | None, settings: ExecutorSettings, registry: Registry) -> Any:
    """The registered executor ``name`` (None: the one marked default), built with ``settings``."""
    if name is None:
        defaults = [c.record for c in registry.components("executors") if getattr(c.record, "default", False)]
        if not defaults:
            raise ConfigError("no default sweep executor is registered; pass --executor (robrank list executors)")
        record = defaults[0]
    else:
        record = registry.get("executors", name)
    unknown = sorted(set(settings.options) - set(record.options))
    if unknown:
        accepted = f"it accepts: {', '.join(record.options)}" if record.options else "it takes no -X options"
        raise ConfigError(f"executor {record.name!r} has no option {unknown[0]!r}; {accepted}")
    return registry.create("executors", record.name, settings)


__all__ = ["Executor", "ExecutorSettings", "parse_options", "build_executor"]
