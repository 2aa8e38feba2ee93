"""Print MICA± against CA± on one model: mean prank over the test split at several budgets.

    python examples/robrank-myattack/benchmarks/compare_ca.py RUN_DIR [--max-batches N]
    python examples/robrank-myattack/benchmarks/compare_ca.py --train-tiny   # a tiny digits model first

CA+ succeeds when prank falls (0.5 clean), CA- when it rises (about 0.01 clean). Both attacks
see the same queries (same seed), so a row compares the update rules only. On a CPU a
whole-split comparison of a digits model takes a few minutes.
"""
from __future__ import annotations

import argparse
import tempfile
import time

BUDGETS = (
    ("8/255, 1/255 x 32 (pami28 small)", "eps=0.03137:alpha=0.003922:pgditer=32"),
    ("77/255, 3/255 x 32 (rob28)", "eps=0.30196:alpha=0.011764:pgditer=32"),
    ("77/255, 3/255 x 8 (few steps)", "eps=0.30196:alpha=0.011764:pgditer=8"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", help="run directory or checkpoint")
    parser.add_argument("--train-tiny", action="store_true", help="train robrank.testing's tiny digits model first")
    parser.add_argument("--max-batches", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import robrank_myattack
    from robrank.plugin_api import get_registry, load_run, load_split, run_attack
    from robrank.testing import registered, train_tiny_run

    with registered(robrank_myattack, distribution="robrank-myattack", version=robrank_myattack.__version__):
        run_path = args.run
        if args.train_tiny or run_path is None:
            run_path = train_tiny_run(tempfile.mkdtemp(prefix="mica-bench-") + "/run")
        run = load_run(run_path, device=args.device, registry=get_registry())
        test = load_split(run.dataset, "test", registry=get_registry())
        print(f"model: {run.checkpoint} ({run.dataset}, {run.config.get('backbone')}, metric {run.metric}); {len(test)} test images")
        print(f"{'budget':<36} {'sign':<4} {'clean':>7} {'CA':>7} {'MICA':>7}   seconds CA / MICA")
        for label, pgd in BUDGETS:
            for sign in "+-":
                row = {}
                for attack in ("CA", "MICA"):
                    start = time.perf_counter()
                    result = run_attack(run.model, test, f"{attack}:pm={sign}:W=1:{pgd}", max_batches=args.max_batches,
                                        batch_size=args.batch_size, device=args.device, progress=False, registry=get_registry())
                    row[attack] = (result.orig["prank"], result.adv["prank"], time.perf_counter() - start)
                clean = row["CA"][0]
                print(f"{label:<36} {sign:<4} {clean:7.4f} {row['CA'][1]:7.4f} {row['MICA'][1]:7.4f}   {row['CA'][2]:.1f} / {row['MICA'][2]:.1f}")


if __name__ == "__main__":
    main()
