"""Wall time of a rob28 swipe on this CPU: a C2F2 model, the first 1,000 MNIST test queries.

The model is an *untrained* C2F2 (random weights, seed 0, embedding 512, metric N — the
reference's MNIST setting) written to a run directory in robrank's checkpoint format; the
cost of an attack does not depend on what the weights learned, and a random model keeps the
benchmark free of a training run. The gallery is the whole 10,000-image test split (as in
the reference); the queries are its first 1,000 images (``--batch`` x ``--max-batches``).
The time is measured around :func:`robrank.swipe.swipe` (checkpoint load, gallery, nine
attacks, JSON written), i.e. without interpreter start and imports. The last line
extrapolates the attack time linearly to the full 10,000 queries (target <= 45 min, docs/performance.md).

    ROBRANK_DATA=path/to/data python benchmarks/swipe_cpu.py [--threads 2] [--batch 250] [--max-batches 4]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from robrank.plugins import get_registry


def write_random_run(root: Path, embedding_dim: int) -> Path:
    from robrank.io import save_checkpoint, write_json
    from robrank.models.checkpoint import FORMAT, FORMAT_VERSION, build_model

    run = root / "mnist-c2f2-random"
    config = {"dataset": "mnist", "backbone": "c2f2", "metric": "N", "embedding_dim": embedding_dim, "loss": "ptripletN"}
    torch.manual_seed(0)
    model = build_model(config, registry=get_registry())
    write_json(run / "config.json", {"config": config})
    save_checkpoint(
        run / "checkpoints" / "last.pt",
        {"format": FORMAT, "format_version": FORMAT_VERSION, "config": config, "epoch": 0, "step": 0, "model": model.state_dict()},
    )
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--batch", type=int, default=250, help="queries per attack batch")
    parser.add_argument("--max-batches", type=int, default=4, help="batches per attack (queries = batch x max-batches)")
    parser.add_argument("--profile", default="rob28")
    parser.add_argument("--embedding-dim", type=int, default=512)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from robrank.swipe import swipe
    from robrank.swipe.report import report

    with tempfile.TemporaryDirectory() as tmp:
        run = write_random_run(Path(tmp), args.embedding_dim)
        start = time.perf_counter()
        out = swipe(run, args.profile, device="cpu", batch_size=args.batch, max_batches=args.max_batches, progress=args.progress, registry=get_registry())
        wall = time.perf_counter() - start
        payload = json.loads(out.read_text())
        print(report([out], registry=get_registry()), end="")

    queries = payload["attacks"][0]["count"]
    attack_seconds = sum(a["seconds"] for a in payload["attacks"])
    print(f"\nCPU threads {args.threads}, batch {args.batch}, {queries} queries x {len(payload['attacks'])} attacks, gallery {payload['queries']} images")
    for attack in payload["attacks"]:
        print(f"  {attack['spec']:<52} {attack['seconds']:8.2f} s  ({attack['count'] / attack['seconds']:.0f} queries/s)")
    print(f"gallery embedding        {payload['timings']['gallery_seconds']:8.2f} s")
    print(f"{args.profile} swipe wall time  {wall:8.2f} s  (load + gallery + attacks + JSON, random C2F2)")
    full = attack_seconds * payload["queries"] / queries + payload["timings"]["gallery_seconds"]
    print(f"extrapolated to all {payload['queries']} queries: {full / 60:.1f} min")


if __name__ == "__main__":
    main()
