"""Run a robrank command and count its gradient evaluations; the counts go to $COUNT_GRADIENTS_TO as JSON.

    COUNT_GRADIENTS_TO=cost.json python count_gradients.py train --defense act ...

Counted: ``torch.autograd.grad`` calls (what the defenses' inner attacks take: a gradient
with respect to the images) and ``Tensor.backward`` calls (one per optimiser step: the
outer loss). A training step's gradient evaluations are their sum over the number of steps.
The command runs exactly as ``robrank ARGS`` would (``python -m robrank``), so the numbers
belong to the real training; the wrapper only counts.
"""
from __future__ import annotations

import atexit
import json
import os
import runpy
import sys

import torch

COUNTS = {"autograd_grad": 0, "backward": 0}
_grad = torch.autograd.grad
_backward = torch.Tensor.backward


def _counting_grad(*args, **kwargs):
    COUNTS["autograd_grad"] += 1
    return _grad(*args, **kwargs)


def _counting_backward(self, *args, **kwargs):
    COUNTS["backward"] += 1
    return _backward(self, *args, **kwargs)


def _write() -> None:
    target = os.environ.get("COUNT_GRADIENTS_TO")
    if target:
        with open(target, "w") as handle:
            json.dump(COUNTS, handle)


if __name__ == "__main__":
    torch.autograd.grad = _counting_grad
    torch.Tensor.backward = _counting_backward
    atexit.register(_write)
    sys.argv = ["robrank", *sys.argv[1:]]
    runpy.run_module("robrank", run_name="__main__", alter_sys=True)
