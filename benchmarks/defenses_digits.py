"""Defenses on the embedded ``digits`` dataset at full defaults: ERS and R@1 of none / EST / ACT.

Each row is one complete ``robrank run`` in its own process (8 epochs of SPC-2 pairs,
batch 128 pairs, Adam 1e-3; adversarial training ε 77/255, α 3/255, 32 steps; the full
rob28 swipe of all 364 test digits), so the figures are what a user gets. The published
ordering on MNIST/Fashion is none < EST < ACT in ERS (the reference). The script also
times the default ``robrank run`` (no options: the quickstart), end to end.

Usage::

    python benchmarks/defenses_digits.py [--backbone lenet|c2f2] [--defenses none,est,act]
        [--out DIR] [--skip-quickstart] [--extra OPTIONS] [--defense-extra OPTIONS]

Prints a table; the run directories stay under ``--out`` (default: a temporary folder).
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


def robrank_run(args: list[str], cwd: Path) -> tuple[float, Path, str]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "robrank", "run", "--no-progress", *args],
        cwd=cwd, capture_output=True, text=True, env={**os.environ, "ROBRANK_LOAD_PLUGINS": ""},
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"robrank run {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    run_dir = next(line.split("run: ", 1)[1].strip() for line in proc.stdout.splitlines() if line.startswith("run: ") and "/" in line)
    return seconds, cwd / run_dir if not Path(run_dir).is_absolute() else Path(run_dir), proc.stdout


def summary(run_dir: Path) -> dict[str, float]:
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    swipe = json.loads((run_dir / "swipe-rob28.json").read_text())
    block = swipe.get("ers")
    ers = block.get("ers") if isinstance(block, dict) else block
    raw = block.get("raw", {}) if isinstance(block, dict) else {}
    train_seconds = sum(m.get("train_seconds", 0.0) for m in metrics)
    return {
        "R@1": 100 * metrics[-1]["R@1"], "R@2": 100 * metrics[-1]["R@2"], "mAP": 100 * metrics[-1]["mAP"],
        "NMI": 100 * metrics[-1]["NMI"], "ERS": ers, "train_s": train_seconds,
        "swipe_s": swipe["timings"]["total_seconds"], "raw": raw,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="lenet", help="backbone for the defense rows [lenet, the digits default of robrank run]")
    parser.add_argument("--defenses", default="none,est,act")
    parser.add_argument("--out", default=None, help="keep the run directories here")
    parser.add_argument("--skip-quickstart", action="store_true")
    parser.add_argument("--extra", default="", help="extra robrank run options for every row, e.g. '--epochs 2'")
    parser.add_argument("--defense-extra", default="", help="extra options for the defended rows only, e.g. '--pgditer 8'")
    args = parser.parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="robrank-defenses-"))
    out.mkdir(parents=True, exist_ok=True)
    import torch

    print(f"# robrank defenses on digits: torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads; runs under {out}")
    if not args.skip_quickstart:
        seconds, run_dir, _ = robrank_run([], out)
        s = summary(run_dir)
        print(f"default `robrank run` (digits, lenet, ptripletN, none): {seconds:.1f} s end to end "
              f"(training {s['train_s']:.1f} s, swipe {s['swipe_s']:.1f} s); R@1 {s['R@1']:.1f}, ERS {s['ERS']:.1f}", flush=True)
    rows = []
    for defense in args.defenses.split(","):
        extra = [*args.extra.split(), *(args.defense_extra.split() if defense != "none" else [])]
        seconds, run_dir, _ = robrank_run(["--plugin", defense, "--dataset", "digits", "--backbone", args.backbone, *extra], out)
        s = summary(run_dir)
        rows.append((defense, s, seconds))
        print(f"{defense}: done in {seconds:.0f} s", flush=True)
    print()
    print("| defense | backbone | R@1 | R@2 | mAP | NMI | ERS | train s | swipe s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for defense, s, seconds in rows:
        print(f"| {defense} | {args.backbone} | {s['R@1']:.1f} | {s['R@2']:.1f} | {s['mAP']:.1f} | {s['NMI']:.1f} | {s['ERS']:.1f} | {s['train_s']:.0f} | {s['swipe_s']:.0f} |")
    for defense, s, _ in rows:
        if s["raw"]:
            print(f"raw scores {defense}: " + ", ".join(f"{k} {v:.3g}" for k, v in s["raw"].items() if v is not None))
    ers = [s["ERS"] for _, s, _ in rows]
    names = [d for d, _, _ in rows]
    if names == ["none", "est", "act"]:
        print(f"published ordering none < EST < ACT in ERS: {'holds' if ers[0] < ers[1] < ers[2] else 'does NOT hold'} here")


if __name__ == "__main__":
    main()
