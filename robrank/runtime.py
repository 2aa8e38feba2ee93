"""Where work runs: the one "CUDA when present" rule, the one worker-count rule, and the runtime options as one value.

Every command (train, run, eval, attack, swipe) and the library functions below them ask
here, so ``--device auto`` and an unset ``--num-workers`` mean the same thing everywhere.
:class:`RuntimeOptions` carries device, batch size, workers and the speed options (amp,
channels-last, compile) from the command line to the code that runs, as one value.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from typing import Any

from .errors import ConfigError

#: the value of ``--device`` that means "CUDA when torch sees a GPU, else the CPU"
AUTO = "auto"
#: DataLoader workers are capped here: JPEG decoding stops scaling well before that on one node
MAX_WORKERS = 8


@dataclass(frozen=True)
class RuntimeOptions:
    """Where and how fast a command runs: ``-D/--device``, ``-b/--batch-size``, ``--num-workers``,
    ``--amp``, ``--channels-last`` and ``--compile``, declared once as a click option group
    (:func:`robrank.cli.options.runtime_options`) and handed to every command as this one value.

    None of them changes what an attack computes except ``amp`` (bf16 moves the metrics
    slightly), which results files record. ``given`` names the fields the user set: a resumed
    run takes every other one from its saved config, a sweep's grid file fills them.
    """

    device: str | None = None  # None/auto: CUDA when present, decided where the work starts
    batch_size: int | None = None  # None: the command's own default (automatic, or the run's)
    num_workers: int | None = None  # None: one per CPU, at most MAX_WORKERS
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    #: the fields set on the command line (or by the caller), as opposed to left at their defaults
    given: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def of(cls, **values: Any) -> RuntimeOptions:
        """The options with ``values`` set; a None value means "not given" and keeps the field's default."""
        known = {f.name for f in dataclass_fields(cls)} - {"given"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TypeError(f"RuntimeOptions has no field {unknown[0]!r}; it has {', '.join(sorted(known))}")
        set_values = {k: v for k, v in values.items() if v is not None}
        return cls(**set_values, given=frozenset(set_values))

    @property
    def speed(self) -> dict[str, bool]:
        """The model-wrapping options, as :func:`robrank.attacks.accelerate` takes them."""
        return {"amp": bool(self.amp), "channels_last": bool(self.channels_last), "compile": bool(self.compile)}

    def fields(self, *, resolve_device: bool = False) -> dict[str, Any]:
        """As keyword arguments (``AttackOptions(**runtime.fields())``); ``resolve_device`` applies the auto rule now."""
        values = {f.name: getattr(self, f.name) for f in dataclass_fields(self) if f.name != "given"}
        if resolve_device:
            values["device"] = device_name(self.device)
        return values

    def given_fields(self) -> dict[str, Any]:
        """Only the fields that were given (a resumed run's saved settings fill the rest)."""
        return {name: getattr(self, name) for name in sorted(self.given)}

    def with_device(self, device: str) -> RuntimeOptions:
        """The same options on ``device`` (an auto device resolved where the work starts)."""
        return replace(self, device=device)


def default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``."""
    import torch  # lazy: keeps robrank --help torch-free

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_name(name: str | None) -> str:
    """``name`` with ``None``/``auto`` replaced by :func:`default_device`."""
    return default_device() if name in (None, "", AUTO) else str(name)


def resolve_device(name: str | None, info: Any = None) -> Any:
    """The ``torch.device`` for ``--device`` (``auto``: CUDA when present).

    Under several processes (``info``: a :class:`~robrank.training.distributed.DistInfo`)
    each rank takes the GPU of its local rank. Unknown names and a CUDA request without a
    GPU are one-line ConfigErrors.
    """
    import torch  # lazy: keeps robrank --help torch-free

    name = device_name(name)
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device cuda requested but torch sees no CUDA GPU; use --device cpu")
        if info is not None and info.enabled:
            device = torch.device("cuda", info.local_rank)
        elif device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def usable_cpus() -> int:
    """CPUs this process may run on: under a scheduler or a container's cpuset that is fewer than the machine has."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def default_num_workers() -> int:
    """DataLoader workers for file datasets: one per usable CPU, at most :data:`MAX_WORKERS`."""
    return min(MAX_WORKERS, usable_cpus())


def threads_per_process(processes: int) -> int:
    """Intra-op threads for each of ``processes`` processes sharing this machine's usable CPUs."""
    return max(1, usable_cpus() // max(1, int(processes)))


__all__ = ["AUTO", "MAX_WORKERS", "RuntimeOptions", "default_device", "device_name", "resolve_device", "default_num_workers", "threads_per_process", "usable_cpus"]
