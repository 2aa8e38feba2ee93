"""rob28 swipe throughput before vs after the performance work, as a ratio from one run.

"before" reproduces the reference-style costs: for every attack the checkpoint is loaded
again, the test split reloaded, the whole gallery re-embedded, and the attack run at batch
128. "after" is :func:`robrank.swipe.swipe` as shipped: one load, one gallery, the automatic
batch size. Both attack the same queries (the first ``--queries`` MNIST test images, against
the whole 10,000-image gallery) of the same untrained C2F2 (seed 0, embedding 512, metric
N), and both write the same JSON numbers (checked here; tests/test_swipe_speed.py checks it
on a small split). The two modes alternate (``--rounds``) so machine load hits both alike.

    ROBRANK_DATA=path/to/data python benchmarks/swipe_throughput.py [--queries 512] [--threads 2] [--rounds 1]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from robrank.plugins import get_registry

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: the batch size of the reference swipe (rob28 at batch 128)
BASELINE_BATCH = 128


def baseline_swipe(run: Path, profile: str, out: Path, *, queries: int, device: str = "cpu", seed: int = 0,
                   data_root: str | None = None) -> Path:
    """The reference's way: per attack, reload the checkpoint and the split, re-embed the gallery, batch 128."""
    from robrank.attacks import Gallery, dataset_attack_defaults, parse_spec, run_attack
    from robrank.data.loading import load_split
    from robrank.io import write_json
    from robrank.models.checkpoint import load_run
    from robrank.swipe.runner import resolve_profile

    record = resolve_profile(profile, registry=get_registry())
    attacks = []
    for text in record.factory():
        loaded = load_run(run, device=device, registry=get_registry())
        dataset = load_split(loaded.dataset, "test", data_root=data_root, registry=get_registry())
        gallery = Gallery.compute(loaded.model, dataset, batch_size=BASELINE_BATCH, device=device)
        spec = parse_spec(text, registry=get_registry())
        result = run_attack(loaded.model, dataset, spec, gallery=gallery, batch_size=BASELINE_BATCH, device=device, seed=seed,
                            indices=range(queries), progress=False, defaults=dataset_attack_defaults(loaded.dataset, registry=get_registry()), registry=get_registry())
        attacks.append({"spec": spec.text, "orig": result.orig, "adv": result.adv, "count": result.count})
    write_json(out, {"attacks": attacks})
    return out


def current_swipe(run: Path, profile: str, out: Path, *, queries: int, device: str = "cpu", seed: int = 0,
                  data_root: str | None = None, **options: Any) -> Path:
    """The shipped runner, automatic batch size, restricted to the first ``queries`` test images."""
    from dataclasses import replace

    from robrank.swipe import SwipeBackend, swipe

    base = SwipeBackend.default(get_registry())

    def run_attack(model, dataset, spec, **kwargs):
        kwargs["indices"] = range(queries)
        return base.run_attack(model, dataset, spec, **kwargs)

    return swipe(run, profile, output=out, device=device, seed=seed, data_root=data_root, progress=False, restart=True,
                 backend=replace(base, run_attack=run_attack), registry=get_registry(), **options)


def numbers(path: Path) -> dict[str, tuple[int, dict[str, float], dict[str, float]]]:
    payload = json.loads(Path(path).read_text())
    return {a["spec"]: (a["count"], a["orig"], a["adv"]) for a in payload["attacks"]}


def max_difference(a: dict, b: dict) -> float:
    """Largest absolute difference of any summary number (NaN-safe); inf if the attacks differ."""
    if a.keys() != b.keys():
        return math.inf
    worst = 0.0
    for spec in a:
        if a[spec][0] != b[spec][0]:
            return math.inf
        for side in (1, 2):
            for key, value in a[spec][side].items():
                other = b[spec][side].get(key, math.nan)
                if not (math.isnan(value) and math.isnan(other)):
                    worst = max(worst, abs(value - other))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", default="rob28")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from swipe_cpu import write_random_run

    with tempfile.TemporaryDirectory() as tmp:
        run = write_random_run(Path(tmp), 512)
        if args.dataset != "mnist":  # another rob28 split (digits for a quick look)
            cfg = json.loads((run / "config.json").read_text())
            cfg["config"]["dataset"] = args.dataset
            (run / "config.json").write_text(json.dumps(cfg))
            from robrank.io import load_checkpoint, save_checkpoint

            payload = load_checkpoint(run / "checkpoints" / "last.pt")
            payload["config"]["dataset"] = args.dataset
            save_checkpoint(run / "checkpoints" / "last.pt", payload)
        before_s, after_s = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            b = baseline_swipe(run, args.profile, Path(tmp) / "before.json", queries=args.queries, device=args.device)
            before_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            a = current_swipe(run, args.profile, Path(tmp) / "after.json", queries=args.queries, device=args.device)
            after_s.append(time.perf_counter() - start)
        diff = max_difference(numbers(b), numbers(a))
        n_attacks = len(numbers(a))
        batch = json.loads(Path(a).read_text())
    images = args.queries * n_attacks
    before, after = min(before_s), min(after_s)
    print(f"{args.profile} on {args.dataset}: {args.queries} queries x {n_attacks} attacks, gallery = whole test split, "
          f"{torch.get_num_threads()} threads, device {args.device}, torch {torch.__version__}")
    print(f"before (reload + re-embed per attack, batch {BASELINE_BATCH}): {before:8.2f} s  {images / before:8.1f} images/s")
    print(f"after  (one load, one gallery, automatic batch):       {after:8.2f} s  {images / after:8.1f} images/s")
    print(f"throughput ratio after/before: {before / after:.3f}")
    print(f"largest difference of any JSON number between the two: {diff:.3g} (queries {batch['attacks'][0]['count']})")


if __name__ == "__main__":
    main()
