"""Shared test setup.

Installed third-party plugins are never auto-loaded in tests (ROBRANK_LOAD_PLUGINS is set
to empty, which keeps only robrank's own bundled entry points); tests that need a plugin
register it through a fixture. The real MNIST/Fashion files come from ../shared/data.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("ROBRANK_LOAD_PLUGINS", "")
if SHARED_DATA.is_dir():
    os.environ.setdefault("ROBRANK_DATA", str(SHARED_DATA))

torch = pytest.importorskip("torch")
# One thread: the test tensors are small, and on a 2-core machine two threads per process
# oversubscribe as soon as anything else runs (DDP tests start two processes).
torch.set_num_threads(1)


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("../shared/data/mnist is not present")
    return SHARED_DATA


def pytest_collection_modifyitems(config, items):
    has_cuda = torch.cuda.is_available()
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
