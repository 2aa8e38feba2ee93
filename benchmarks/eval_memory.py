"""Time and peak memory of retrieval metrics on an SOP-sized gallery (the CPU memory target: no out-of-memory, peak <= 4 GB).

Random 60,000 x 512 embeddings with 11,316 classes, query = gallery. Prints the time of the
ranking metrics (R@1, R@2, mAP, mAP@R) and of NMI (k-means with k = 11,316) separately,
and the process's peak resident memory (target: <= 4 GB).

    python benchmarks/eval_memory.py [--n 60000] [--dim 512] [--classes 11316] [--no-nmi]
"""
from __future__ import annotations

import argparse
import resource
import time

import torch

from robrank.metrics import normalized_mutual_information, retrieval_metrics


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=11_316)
    parser.add_argument("--metric", default="N", choices=["C", "E", "N"])
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--no-nmi", action="store_true", help="skip k-means (it dominates the time on a CPU)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(args.n) % args.classes
    labels = labels[torch.randperm(args.n, generator=g)]
    # class centres + noise, so the ranking is neither trivial nor random
    centres = torch.randn(args.classes, args.dim, generator=g)
    embeddings = (centres[labels] + 1.5 * torch.randn(args.n, args.dim, generator=g)).to(args.device)
    base = peak_rss_gb()
    print(f"{args.n} x {args.dim} embeddings, {args.classes} classes, metric {args.metric}, {torch.get_num_threads()} threads")
    print(f"peak RSS after creating the data: {base:.2f} GB")

    started = time.perf_counter()
    ranking = retrieval_metrics(embeddings, labels, args.metric, args.classes, chunk_size=args.chunk_size, nmi=False)
    ranking_s = time.perf_counter() - started
    print(f"ranking metrics: {ranking_s:.1f} s  " + "  ".join(f"{k} {100 * v:.2f}" for k, v in ranking.items()))
    print(f"peak RSS after ranking: {peak_rss_gb():.2f} GB")
    if not args.no_nmi:
        started = time.perf_counter()
        nmi = normalized_mutual_information(embeddings, labels, args.classes)
        nmi_s = time.perf_counter() - started
        print(f"NMI (k-means, k={args.classes}): {nmi_s:.1f} s  NMI {100 * nmi:.2f}")
        print(f"total: {ranking_s + nmi_s:.1f} s")
    peak = peak_rss_gb()
    print(f"peak RSS: {peak:.2f} GB (target <= 4 GB): {'OK' if peak <= 4.0 else 'OVER'}")


if __name__ == "__main__":
    main()
