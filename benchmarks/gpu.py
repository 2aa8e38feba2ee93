"""The four GPU speed targets (docs/performance.md) and the gpu-marked tests, as ONE table.

    python benchmarks/gpu.py [--data-root DIR] [--dry-run] [--skip-tests] [--only JOB,...]

Jobs (each timed from process start to its result written, in a fresh Python process):

* ``swipe28``: ``robrank swipe RUN -p rob28`` of an untrained C2F2 (embedding 512, metric N)
  on the 10,000-image MNIST test split (target <= 10 s);
* ``act28``: ``robrank train`` ACT on Fashion, C2F2, eta = 32, 8 epochs, batch 128 pairs
  (target <= 90 s);
* ``swipe224``: ``robrank swipe RUN -p rob224 --amp --channels-last`` of an untrained
  ResNet-18 on a CUB-sized split: 5,924 synthetic 224x224 images (target <= 200 s);
* ``act224``: ACT training of ResNet-18 on CUB-sized synthetic data (5,864 training images,
  batch 56 pairs, eta = 32): seconds per epoch, from the run's metrics.jsonl (target <= 50 s).

MNIST/Fashion come from ``--data-root`` (or $ROBRANK_DATA) when their files are there; else
synthetic 28x28 splits of the same sizes stand in (the table says which). Cost does not
depend on pixel values or on what the weights learned, so random weights and synthetic
pixels time the same work. Nothing is downloaded or installed. ``--dry-run`` runs every
job at toy sizes on the CPU (a check that the script works, not a measurement).

The synthetic datasets are registered for these processes only (an in-memory plugin passed
to the plugin host), never installed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from robrank.plugins import get_registry

REPO = Path(__file__).resolve().parents[1]

#: floor on one H200 (docs/performance.md): attack-step images/s and the kernel time it implies
FLOOR = {
    # 9 attacks x 32 steps x 10,000 images at 655,000 images/s (C2F2, batch 10,000)
    "swipe28": 9 * 32 * 10_000 / 655_000,
    # 8 epochs x 469 steps; a step attacks 2 x 128 images for 32 steps, then 3 x 128 forward/backward
    # (ACT); at the batch-128 C2F2 rate, 84,000 images/s: no rate at batch 256 was measured,
    # which is faster, so this over-estimates the floor (the row is marked)
    "act28": 8 * (60_000 / 128) * (2 * 128 * 33 + 3 * 128) / 84_000,
    # 9 x 32 x 5,924 ResNet-18 steps at 11,700 images/s (bf16, batch 512)
    "swipe224": 9 * 32 * 5_924 / 11_700,
    # 5,864 / 56 steps x (2 x 56 x 33 + 3 x 56) images at 8,300 images/s (fp32, batch 112)
    "act224": (5_864 / 56) * (2 * 56 * 33 + 3 * 56) / 8_300,
}
TARGET = {"swipe28": 10.0, "act28": 90.0, "swipe224": 200.0, "act224": 50.0}
LABEL = {
    "swipe28": "rob28 swipe, C2F2, 10k MNIST test (end to end)",
    "act28": "ACT training, Fashion, C2F2, eta 32, 8 epochs",
    "swipe224": "rob224 swipe, ResNet-18, 5,924 x 224 (bf16, channels-last)",
    "act224": "ACT training, ResNet-18, CUB-sized: s/epoch",
}
JOBS = tuple(TARGET)

#: full and dry-run sizes: (train images, test images) per family
SIZES = {False: {"28": (60_000, 10_000), "224": (5_864, 5_924)}, True: {"28": (256, 200), "224": (24, 20)}}


# --------------------------------------------------------------------- synthetic datasets


def synthetic_plugin(dry_run: bool) -> Any:
    """A plugin object registering ``synth28``, ``synth28f`` and ``synth224`` (in memory, seeded)."""
    import robrank
    from robrank.data.base import DatasetSource, TensorImageDataset
    from robrank.records import DatasetRecord, ProfileRecord

    sizes = SIZES[dry_run]
    classes224 = 4 if dry_run else 100

    def make_source(size: int, channels: int, classes: int, key: str, seed: int):
        class SyntheticSource(DatasetSource):
            """Seeded uniform uint8 pixels; labels cycle through the classes (both splits)."""

            def search_paths(self) -> list[Path]:
                return []

            def is_present(self, path: Path) -> bool:
                return True

            def verify(self, path: Path) -> str | None:
                return None

            def locate(self) -> Path:
                return Path(".")

            def how_to_get(self) -> str:
                return "synthetic: generated in memory"

            def load_split(self, split: str, augment: bool = False):
                import torch

                n = sizes[key][0 if split == "train" else 1]
                g = torch.Generator().manual_seed(seed + (split == "test"))
                data = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
                return TensorImageDataset(data, torch.arange(n) % classes)

        return SyntheticSource

    class SyntheticDatasets:
        @robrank.hookimpl
        def register_datasets(self, register):
            register(DatasetRecord(name="synth28", factory=make_source(28, 1, 10, "28", 1), summary="synthetic MNIST-sized",
                                   image_size=28, channels=1, num_test_classes=10, profile="rob28"))
            register(DatasetRecord(name="synth28f", factory=make_source(28, 1, 10, "28", 2), summary="synthetic Fashion-sized",
                                   image_size=28, channels=1, num_test_classes=10, profile="rob28"))
            register(DatasetRecord(name="synth224", factory=make_source(224, 3, classes224, "224", 3), summary="synthetic CUB-sized",
                                   image_size=224, channels=3, num_test_classes=classes224, profile="rob224"))

        @robrank.hookimpl
        def register_profiles(self, register):
            # dry runs only: the rob28/rob224 attacks with one PGD step, to check the plumbing fast
            from robrank_plugins.profiles.ers import ERS
            from robrank_plugins.profiles.reference import rob28, rob224

            for name, base in (("dry28", rob28), ("dry224", rob224)):
                specs = [spec.replace("pgditer=32", "pgditer=1") for spec in base()]
                register(ProfileRecord(name=name, factory=lambda specs=specs: list(specs), summary="dry-run profile",
                                       score=ERS))

    return SyntheticDatasets()


def run_cli(argv: list[str], dry_run: bool) -> None:
    """``robrank ARGV`` in this process, with the synthetic datasets registered."""
    from robrank.plugins import Provider, load_plugins, use_host
    from robrank.cli import main

    host = load_plugins(plugins=[(synthetic_plugin(dry_run), Provider("benchmarks", "0", "synthetic-datasets"))])
    with use_host(host):
        main(argv)


# --------------------------------------------------------------------------- the jobs


def have_idx(data_root: Path | None, name: str) -> bool:
    return data_root is not None and (data_root / name).is_dir() and any((data_root / name).iterdir())


def write_random_run(root: Path, dataset: str, backbone: str) -> Path:
    """A run directory holding an untrained model in robrank's checkpoint format."""
    import torch

    from robrank.io import save_checkpoint, write_json
    from robrank.models.checkpoint import FORMAT, FORMAT_VERSION, build_model

    run = root / f"{dataset}-{backbone}-random"
    config = {"dataset": dataset, "backbone": backbone, "metric": "N", "embedding_dim": 512, "loss": "ptripletN", "pretrained": "none"}
    torch.manual_seed(0)
    model = build_model(config, registry=get_registry())
    write_json(run / "config.json", {"config": config})
    save_checkpoint(run / "checkpoints" / "last.pt",
                    {"format": FORMAT, "format_version": FORMAT_VERSION, "config": config, "epoch": 0, "step": 0, "model": model.state_dict()})
    return run


def timed(argv: list[str], dry_run: bool, env: dict[str, str], log: Path, timeout: float) -> tuple[float, int]:
    """Wall seconds of ``robrank ARGV`` in a fresh interpreter (start to exit) and its exit code."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--cli", *(["--dry-run"] if dry_run else []), "--", *argv]
    start = time.perf_counter()
    with open(log, "a") as handle:
        handle.write(f"\n$ {' '.join(argv)}\n")
        handle.flush()
        try:
            code = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, timeout=timeout, cwd=REPO).returncode
        except subprocess.TimeoutExpired:
            code = 124
    return time.perf_counter() - start, code


def plan(args: argparse.Namespace, work: Path, data_root: Path | None) -> dict[str, tuple[list[str], str]]:
    """Each job's robrank command line and a note (data source)."""
    dry = args.dry_run
    device = "cpu" if dry else "cuda"
    mnist = "mnist" if (not dry and have_idx(data_root, "mnist")) else "synth28"
    fashion = "fashion" if (not dry and have_idx(data_root, "fashion-mnist")) else "synth28f"
    common_swipe = ["--no-progress", "--device", device, "--restart"]
    jobs: dict[str, tuple[list[str], str]] = {}
    run28 = write_random_run(work, mnist, "c2f2")
    jobs["swipe28"] = (["swipe", str(run28), "-p", "dry28" if dry else "rob28", *common_swipe] + (["-b", "50", "-m", "1"] if dry else []),
                       "real MNIST" if mnist == "mnist" else "synthetic 28x28")
    train_common = ["--device", device, "--no-progress", "--pretrained", "none"]
    jobs["act28"] = (["train", "-C", f"{fashion}:c2f2p:ptripletN", "--run-dir", str(work / "act28"), *train_common]
                     + (["--epochs", "1", "--max-steps", "2", "--batch-size", "8", "--pgditer", "2"] if dry else []),
                     "real Fashion" if fashion == "fashion" else "synthetic 28x28")
    run224 = write_random_run(work, "synth224", "resnet18")
    jobs["swipe224"] = (["swipe", str(run224), "-p", "dry224" if dry else "rob224", "--amp", "--channels-last", *common_swipe]
                        + (["-b", "2", "-m", "1"] if dry else []), "synthetic 224x224")
    jobs["act224"] = (["train", "--dataset", "synth224", "--backbone", "resnet18", "--loss", "ptripletN", "--defense", "act",
                       "--epochs", "1", "--validate-every", "1", "--run-dir", str(work / "act224"), *train_common]
                      + (["--max-steps", "2", "--batch-size", "4", "--pgditer", "2"] if dry else []), "synthetic 224x224")
    return jobs


def figure(job: str, wall: float, work: Path) -> float:
    """The job's figure: wall seconds, or for act224 the training seconds of its epoch."""
    if job == "act224":
        lines = (work / "act224" / "metrics.jsonl").read_text().splitlines()
        return float(json.loads(lines[-1])["train_seconds"])
    return wall


def run_tests(dry_run: bool, env: dict[str, str], log: Path) -> str:
    if dry_run:
        return "skipped (dry run)"
    cmd = [sys.executable, "-m", "pytest", "tests/test_gpu.py", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    with open(log, "a") as handle:
        handle.write("\n$ " + " ".join(cmd) + "\n")
        handle.flush()
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=REPO, text=True, timeout=240)
        handle.write(done.stdout)
    last = [line for line in done.stdout.strip().splitlines() if line.strip()]
    return (last[-1] if last else f"exit {done.returncode}").strip("= ")


def card_name(dry_run: bool) -> str:
    import torch

    if not dry_run and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    return f"CPU dry run (torch {torch.__version__}): toy sizes, not a measurement"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None, help="directory with mnist/ and fashion-mnist/ [$ROBRANK_DATA]")
    parser.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU (checks the script in about a minute)")
    parser.add_argument("--skip-tests", action="store_true", help="do not run tests/test_gpu.py -m gpu")
    parser.add_argument("--only", default=",".join(JOBS), help=f"comma-separated jobs [{','.join(JOBS)}]")
    parser.add_argument("--work", type=Path, default=None, help="keep run directories and the log here [a temporary dir]")
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    parser.add_argument("--cli", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("argv", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cli:  # a child process: one robrank command with the synthetic datasets
        run_cli(args.argv, args.dry_run)
        return 0

    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device visible; use --dry-run on a CPU", file=sys.stderr)
        return 2
    data_root = args.data_root or (Path(os.environ["ROBRANK_DATA"]) if os.environ.get("ROBRANK_DATA") else None)
    jobs_wanted = [j.strip() for j in args.only.split(",") if j.strip()]
    unknown = sorted(set(jobs_wanted) - set(JOBS))
    if unknown:
        parser.error(f"unknown job(s) {', '.join(unknown)}; choose from {', '.join(JOBS)}")
    with tempfile.TemporaryDirectory(prefix="robrank-gpu-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        log = work / "gpu-benchmark.log"
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), "ROBRANK_LOAD_PLUGINS": ""}
        if data_root is not None:
            env["ROBRANK_DATA"] = str(data_root)
        if args.dry_run:
            env["CUDA_VISIBLE_DEVICES"] = ""
        tests = "skipped (--skip-tests)" if args.skip_tests else run_tests(args.dry_run, env, log)
        rows = []
        for job, (argv, note) in plan(args, work, data_root).items():
            if job not in jobs_wanted:
                continue
            wall, code = timed(argv, args.dry_run, env, log, timeout=120 if args.dry_run else 420)
            value = figure(job, wall, work) if code == 0 else float("nan")
            rows.append({"job": job, "what": LABEL[job], "seconds": value, "target": TARGET[job],
                         "floor": FLOOR[job], "vs_floor": value / FLOOR[job], "data": note, "exit": code})
        card = card_name(args.dry_run)
        print(f"\ncard: {card}")
        print(f"gpu tests: {tests}")
        header = f"{'job':<9} {'what':<58} {'seconds':>8} {'target':>7} {'meets':>5} {'floor s':>8} {'x floor':>8}  data"
        print(header)
        print("-" * len(header))
        for r in rows:
            meets = "FAIL" if r["exit"] else ("-" if args.dry_run else ("yes" if r["seconds"] <= r["target"] else "no"))
            mark = "*" if r["job"] == "act28" else " "
            print(f"{r['job']:<9} {r['what']:<58} {r['seconds']:8.1f} {r['target']:7.0f} {meets:>5} {r['floor']:7.1f}{mark} "
                  f"{r['vs_floor']:8.2f}  {r['data']}" + (f" (exit {r['exit']}, see {log})" if r["exit"] else ""))
        print("x floor: the figure divided by the H200 kernel-time floor implied by the H200 rates of docs/performance.md for that job (1.0 = the floor).")
        print("* act28's floor uses the batch-128 C2F2 rate; its PGD batch is 256 images, so the true floor is lower.")
        if args.dry_run:
            print("dry run: toy sizes and one-step profiles on the CPU; the seconds only show that every job runs.")
        if args.json:
            args.json.write_text(json.dumps({"card": card, "tests": tests, "rows": rows}, indent=2))
        failed = [r for r in rows if r["exit"]]
        if failed and args.work is None:
            print(f"--- log of failed jobs ({log}) ---")
            print(log.read_text()[-6000:])
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
