"""Device checks (``-m gpu``, skipped without CUDA) and the CPU dry run of benchmarks/gpu.py.

The gpu tests compare the speed options against the plain fp32 path on the same model and
queries: bf16 autocast and ``torch.compile`` must not move a swipe's numbers beyond what a
float rounding change does to PGD (a few points of a percentage at most on a random model,
see docs/performance.md), and a defended training step must run on the device.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from robrank.plugins import get_registry

REPO = Path(__file__).resolve().parents[1]
SPECS = ("CA:pm=+:W=1:eps=0.30196:alpha=0.011764:pgditer=8", "ES:eps=0.30196:alpha=0.011764:pgditer=8",
         "GTT:eps=0.30196:alpha=0.011764:pgditer=8")


def digits_model_and_data(device: str):
    from robrank.data.loading import load_split
    from robrank.models.checkpoint import build_model

    torch.manual_seed(0)
    model = build_model({"backbone": "c2f2", "embedding_dim": 64, "metric": "N"}, registry=get_registry()).to(device).eval()
    return model, load_split("digits", "test", registry=get_registry())


def run_specs(model, dataset, device, **options):
    from robrank.attacks import run_attack

    options = {"batch_size": 128, **options}
    return {spec: run_attack(model, dataset, spec, device=device, progress=False, registry=get_registry(), **options) for spec in SPECS}


def assert_close_results(a, b, tol):
    for spec in SPECS:
        for side in ("orig", "adv"):
            for key, value in getattr(a[spec], side).items():
                other = getattr(b[spec], side)[key]
                scale = 100.0 if key.startswith("r@") else 1.0  # ES recalls are percent
                assert math.isclose(value, other, abs_tol=tol * scale), (spec, side, key, value, other)


@pytest.mark.gpu
def test_swipe_on_the_device_matches_the_cpu():
    model, dataset = digits_model_and_data("cpu")
    cpu = run_specs(model, dataset, "cpu")
    gpu = run_specs(model, dataset, "cuda")
    assert_close_results(cpu, gpu, tol=0.02)


@pytest.mark.gpu
def test_bf16_autocast_agrees_with_fp32():
    model, dataset = digits_model_and_data("cuda")
    fp32 = run_specs(model, dataset, "cuda")
    bf16 = run_specs(model, dataset, "cuda", amp=True, channels_last=True)
    assert_close_results(fp32, bf16, tol=0.03)


@pytest.mark.gpu
def test_compiled_agrees_with_eager():
    model, dataset = digits_model_and_data("cuda")
    eager = run_specs(model, dataset, "cuda")
    compiled = run_specs(model, dataset, "cuda", compile=True)
    assert_close_results(eager, compiled, tol=0.02)


@pytest.mark.gpu
def test_defended_training_steps_on_the_device(tmp_path):
    from robrank.training import TrainConfig, train

    config = TrainConfig(dataset="digits", backbone="c2f2", loss="ptripletN", defense="act", epochs=1, batch_size=32,
                         max_steps=3, device="cuda", embedding_dim=64, run_dir=str(tmp_path / "act"),
                         defense_options={"pgditer": 4})
    result = train(config, progress=False, registry=get_registry())
    assert result.steps == 3 and (tmp_path / "act" / "checkpoints" / "last.pt").is_file()
    assert all(math.isfinite(v) for v in result.metrics.values())


@pytest.mark.gpu
def test_device_dataset_and_auto_batch_fit_the_device():
    from robrank.attacks import Gallery, auto_batch_size, build_attack, device_dataset, parse_spec

    model, dataset = digits_model_and_data("cuda")
    moved = device_dataset(dataset, "cuda")
    assert moved.data.is_cuda and not dataset.data.is_cuda
    gallery = Gallery.compute(model, moved, device="cuda")
    size = auto_batch_size(model, moved, gallery, build_attack(parse_spec(SPECS[0], registry=get_registry()), registry=get_registry()), torch.device("cuda"))
    assert 1 <= size <= len(dataset)


def test_speed_wrapper_keeps_eager_numbers_on_cpu():
    """channels-last on the CPU goes through the wrapper but must give the same numbers."""
    model, dataset = digits_model_and_data("cpu")
    from robrank.attacks import FastEmbedding, accelerate

    assert accelerate(model) is model
    wrapped = accelerate(model, channels_last=True)
    assert isinstance(wrapped, FastEmbedding) and set(wrapped.state_dict()) == {f"inner.{k}" for k in model.state_dict()}
    plain = run_specs(model, dataset, "cpu", batch_size=48, max_batches=1)
    fast = run_specs(wrapped, dataset, "cpu", batch_size=48, max_batches=1)
    assert_close_results(plain, fast, tol=1e-3)


def _dry_run(tmp_path, jobs):
    out = tmp_path / "table.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--dry-run", "--skip-tests", "--only", ",".join(jobs),
         "--work", str(tmp_path / "work"), "--json", str(out)],
        capture_output=True, text=True, timeout=240, cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "card: CPU dry run" in done.stdout and "x floor" in done.stdout

    rows = json.loads(out.read_text())["rows"]
    assert [r["job"] for r in rows] == list(jobs)
    assert all(r["exit"] == 0 and r["seconds"] > 0 for r in rows)
    return rows


def test_gpu_script_dry_run(tmp_path):
    """benchmarks/gpu.py --dry-run runs the 28x28 jobs at toy sizes on the CPU and prints the table."""
    _dry_run(tmp_path, ["swipe28", "act28"])
    swipe = json.loads((tmp_path / "work" / "synth28-c2f2-random" / "swipe-dry28.json").read_text())
    assert swipe["finished"] and swipe["queries"] == 200 and len(swipe["attacks"]) == 9


@pytest.mark.slow
def test_gpu_script_dry_run_all_jobs(tmp_path):
    """All four jobs, including the ResNet-18 ones (bf16 on a CPU is slow: about a minute)."""
    _dry_run(tmp_path, ["swipe28", "act28", "swipe224", "act224"])
    swipe = json.loads((tmp_path / "work" / "synth224-resnet18-random" / "swipe-dry224.json").read_text())
    assert swipe["options"]["amp"] and swipe["options"]["channels_last"] and swipe["finished"]
