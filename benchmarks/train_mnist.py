"""Full ``mnist:c2f2:ptripletN`` training at the reference settings (published setting, Zhou et al., TPAMI 2024; CPU target in docs/performance.md).

Prints the time per epoch (training and validation; CPU target <= 160 s per epoch, the
reference takes 194 s on the same 2-core CPU), the total wall time, and the final R@1 / R@2 /
mAP / NMI next to the published 99.0 / 99.4 / 98.7 / 84.7 (tolerance: 1.5 points for R@K, 3
for mAP and NMI).

    python benchmarks/train_mnist.py [--epochs 8] [--device auto] [--dataset mnist] [--run-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import time

from robrank.training import TrainConfig, train
from robrank.plugins import get_registry

PUBLISHED = {
    "mnist": {"R@1": 99.0, "R@2": 99.4, "mAP": 98.7, "NMI": 84.7},
    "fashion": {"R@1": 87.6, "R@2": 92.7, "mAP": 84.9, "NMI": 77.8},
}
TOLERANCE = {"R@1": 1.5, "R@2": 1.5, "mAP": 3.0, "NMI": 3.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist", choices=sorted(PUBLISHED))
    parser.add_argument("--epochs", type=int, default=8, help="8 = the reference; 1 for a timing run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()

    config = TrainConfig(dataset=args.dataset, backbone="c2f2", loss="ptripletN", epochs=args.epochs,
                         device=args.device, seed=args.seed, amp=args.amp, run_dir=args.run_dir)
    started = time.perf_counter()
    result = train(config, progress=not args.no_progress, registry=get_registry())
    wall = time.perf_counter() - started

    history = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    print(f"\nrun: {result.run_dir}")
    print(f"{'epoch':>5} {'train s':>8} {'val s':>6} {'epoch s':>8} {'loss':>7} {'R@1':>6} {'R@2':>6} {'mAP':>6} {'NMI':>6}")
    for h in history:
        total = h["train_seconds"] + h["val_seconds"]
        print(f"{h['epoch']:>5} {h['train_seconds']:>8.1f} {h['val_seconds']:>6.1f} {total:>8.1f} {h['train_loss']:>7.4f} "
              f"{100 * h['R@1']:>6.2f} {100 * h['R@2']:>6.2f} {100 * h['mAP']:>6.2f} {100 * h['NMI']:>6.2f}")
    per_epoch = sum(h["train_seconds"] + h["val_seconds"] for h in history) / max(len(history), 1)
    print(f"mean time per epoch (train + validation): {per_epoch:.1f} s  (CPU target <= 160 s)")
    print(f"wall time: {wall:.1f} s for {result.epochs} epoch(s), {result.steps} steps")
    published = PUBLISHED[args.dataset]
    print(f"\n{'metric':<6} {'robrank':>8} {'published':>10} {'diff':>6}  within tolerance")
    for key, ref in published.items():
        ours = 100 * result.metrics[key]
        ok = abs(ours - ref) <= TOLERANCE[key]
        print(f"{key:<6} {ours:>8.2f} {ref:>10.1f} {ours - ref:>+6.2f}  {'yes' if ok else 'no'}"
              + ("" if args.epochs == 8 else "  (reference numbers are after 8 epochs)"))


if __name__ == "__main__":
    main()
