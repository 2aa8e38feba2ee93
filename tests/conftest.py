"""Shared test setup.

Installed third-party plugins are never auto-loaded in tests (ROBRANK_LOAD_PLUGINS is set
to empty, which keeps only robrank's own bundled entry points); tests that need a plugin
register it through a fixture. The real MNIST/Fashion files are found only through
``$ROBRANK_DATA`` (CI sets it); without it the real-data tests skip and the rest still runs.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("ROBRANK_LOAD_PLUGINS", "")

torch = pytest.importorskip("torch")
# One thread: the test tensors are small, and on a 2-core machine two threads per process
# oversubscribe as soon as anything else runs (DDP tests start two processes). Child
# processes (sweep cells, spawned workers) inherit the same single thread through the
# environment, so a number computed in a child equals the one computed here: float sums
# split over a different number of threads differ in their last bits.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


def real_data_root() -> Path | None:
    """``$ROBRANK_DATA`` when it holds the real MNIST files, else None."""
    value = os.environ.get("ROBRANK_DATA", "").strip()
    if not value or not (Path(value) / "mnist").is_dir():
        return None
    return Path(value).resolve()


@pytest.fixture
def one_thread():
    """Batches of a few images gain nothing from intra-op threads, which only spin on a busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder with the real mnist/ and fashion-mnist/ IDX files (the test skips without it)."""
    root = real_data_root()
    if root is None:
        pytest.skip("real MNIST not found: set ROBRANK_DATA to a folder holding mnist/ and fashion-mnist/")
    return root


def pytest_collection_modifyitems(config, items):
    has_cuda = torch.cuda.is_available()
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
