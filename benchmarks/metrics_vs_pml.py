"""robrank's retrieval metrics vs pytorch-metric-learning's AccuracyCalculator, side by side in one process.

Random 10,000 x 512 embeddings around 100 class centres, query = gallery, metric N (unit
vectors, Euclidean: the ranking pml's default faiss L2 k-NN gives on the same unit vectors).
Both compute R@1 (pml: precision_at_1) and mAP@R (pml: mean_average_precision_at_r); the
script checks they agree and prints each one's best-of-``--repeats`` time and the ratio
(target: robrank at least 4x faster with its tie-aware metrics, docs/performance.md).
A second, quantised copy of the embeddings (``--levels``) shows the tie-aware path's cost
when nearly every distance ties.

    python benchmarks/metrics_vs_pml.py [--n 10000] [--dim 512] [--classes 100] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import torch


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--levels", type=int, default=3, help="quantisation levels per coordinate of the tied copy")
    args = parser.parse_args()

    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    from robrank.metrics import retrieval_metrics

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(args.n) % args.classes
    centres = torch.randn(args.classes, args.dim, generator=g)
    embeddings = torch.nn.functional.normalize(centres[labels] + 2.0 * torch.randn(args.n, args.dim, generator=g), dim=1)
    print(f"{args.n} x {args.dim} embeddings, {args.classes} classes, {torch.get_num_threads()} threads")

    calculator = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count")
    pml_s, pml = best_of(lambda: calculator.get_accuracy(embeddings, labels, embeddings, labels, ref_includes_query=True), args.repeats)
    ours_s, ours = best_of(lambda: retrieval_metrics(embeddings, labels, "N", args.classes, nmi=False), args.repeats)
    print(f"pytorch-metric-learning: {pml_s:.2f} s  R@1 {100 * pml['precision_at_1']:.3f}  mAP@R {100 * pml['mean_average_precision_at_r']:.3f}")
    print(f"robrank (tie-aware):     {ours_s:.2f} s  R@1 {100 * ours['R@1']:.3f}  mAP@R {100 * ours['mAP@R']:.3f}  "
          f"(also R@2, mAP, mAP@10; tied tops {100 * ours['top_ties']:.1f}%)")
    same = abs(pml["precision_at_1"] - ours["R@1"]) < 1e-6 and abs(pml["mean_average_precision_at_r"] - ours["mAP@R"]) < 1e-5
    print(f"same R@1 and mAP@R: {'yes' if same else 'NO'}; robrank is {pml_s / ours_s:.2f}x faster (target >= 4x)")

    quantised = torch.nn.functional.normalize(torch.round(embeddings * args.levels), dim=1)
    tied_s, tied = best_of(lambda: retrieval_metrics(quantised, labels, "N", args.classes, nmi=False), args.repeats)
    print(f"robrank on {args.levels}-level quantised embeddings: {tied_s:.2f} s  R@1 {100 * tied['R@1']:.3f}  "
          f"mAP@R {100 * tied['mAP@R']:.3f}  tied tops {100 * tied['top_ties']:.1f}%")


if __name__ == "__main__":
    main()
