"""What a number was measured on, described by its hardware (never by host name or path).

Run directories and benchmark records store this so a figure can be compared across
machines, and so stored results carry nothing that identifies the machine they came from.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one) and its logical core count."""
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name or platform.processor() or 'unknown CPU'} ({os.cpu_count()} logical cores)"


def describe(device: str | None) -> str:
    """The card (with its host CPU) when ``device`` is a CUDA device that is present, else the CPU."""
    import torch  # lazy: keeps this module torch-free

    wanted = device or "auto"
    wants_cuda = wanted.startswith("cuda") or (wanted == "auto" and torch.cuda.is_available())
    if wants_cuda and torch.cuda.is_available():
        index = torch.device(wanted).index if ":" in wanted else 0
        return f"{torch.cuda.get_device_name(index or 0)} (host CPU: {cpu_model()})"
    return cpu_model()
