"""CA-TRIDE side by side with ACT and HM at one training budget: clean R@1/mAP and ERS under two profiles.

    python examples/robrank-catride/benchmarks/compare.py --work runs/catride \
        [--datasets mnist,fashion] [--defenses act,hm,catride] [--max-steps 60] [--pgditer 4] \
        [--alpha 0.09412] [--profiles rob28,rob28-aa] [-b 32 -m 1] [--jobs 2] [--device cpu] [--table]

For each dataset (one process per dataset, ``--jobs`` at a time) it trains
``DATASET:c2f2 + ptripletN`` with each defense into ``WORK/<dataset>-<defense>`` for
``--max-steps`` steps, all defenses with the same inner-attack steps and step size (CA-TRIDE
with ``--schedule step`` by default: its step α·t/T and its miner margin follow the steps of
the run, because the released code's e/E is 0 throughout a run shorter than two epochs). Training
runs under ``count_gradients.py``, which counts every ``torch.autograd.grad`` call (the
inner attacks) and every backward (the outer loss), so each defense's gradient evaluations
per training step go to ``cost.json`` in the run with its clean metrics. Then every model is swiped with each profile
(``robrank swipe``; ``-m`` attacks only the first batches of queries, a partial result
that the report marks). Finished trainings are skipped and interrupted swipes continue, so
rerunning the same command resumes. The table it prints at the end is what
docs/results.md and the package README quote.

``gpu224.sh`` beside this file runs the 224-pixel measurement (ResNet-18 on CUB/Cars/SOP,
rob224 and rob224-aa) on a GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from robrank.plugin_api import get_registry

#: the wrapper that runs ``robrank train`` and counts its gradient evaluations
COUNTER = Path(__file__).resolve().parent / "count_gradients.py"
#: the defenses compared (each with its own defaults beyond the common inner budget)
DEFENSES: tuple[str, ...] = ("act", "hm", "catride")


def robrank(*argv: str, log: Path) -> int:
    with open(log, "a") as handle:
        handle.write(f"\n$ robrank {' '.join(argv)}\n")
        handle.flush()
        return subprocess.run([sys.executable, "-m", "robrank", *argv], stdout=handle, stderr=subprocess.STDOUT,
                              check=False).returncode


def train(args: argparse.Namespace, dataset: str, defense: str, run: Path, log: Path) -> None:
    """``robrank train`` under count_gradients.py; writes run/cost.json (gradient evaluations per step, metrics)."""
    if (run / "cost.json").exists():
        return
    argv = ["train", "--dataset", dataset, "--backbone", args.backbone, "--loss", "ptripletN", "--defense", defense,
            "--pgditer", str(args.pgditer), "--epochs", str(args.epochs), "--seed", str(args.seed),
            "--run-dir", str(run), "--device", args.device, "--no-progress"]
    if args.max_steps is not None:
        argv += ["--max-steps", str(args.max_steps)]
    if args.alpha is not None:
        argv += ["--alpha", str(args.alpha)]
    if defense == "catride":
        from robrank_catride.objectives import RELEASED_LAMBDA

        argv += ["-o", f"schedule={args.schedule}"]
        lam = args.lam if args.lam is not None else RELEASED_LAMBDA.get(dataset)
        if lam is not None:  # else the package default (the released code has no 28x28 value)
            argv += ["-o", f"lam={lam}"]
    if (run / "checkpoints" / "last.pt").exists():  # interrupted: the counts cover the resumed part
        argv = ["train", "--resume", "--run-dir", str(run), "--device", args.device, "--no-progress"]
    counts_file = run.parent / f"{run.name}.counts.json"
    started = time.perf_counter()
    with open(log, "a") as handle:
        handle.write(f"\n$ count_gradients.py {' '.join(argv)}\n")
        handle.flush()
        code = subprocess.run([sys.executable, str(COUNTER), *argv], stdout=handle, stderr=subprocess.STDOUT, check=False,
                              env={**os.environ, "COUNT_GRADIENTS_TO": str(counts_file)}).returncode
    if code != 0:
        print(f"compare.py: training {run.name} failed (exit {code}); see {log}", file=sys.stderr)
        return
    counts = json.loads(counts_file.read_text())
    steps = max(counts["backward"], 1)
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    config = json.loads((run / "config.json").read_text())["config"]
    cost = {
        "steps_counted": counts["backward"],
        "inner_gradients_per_step": counts["autograd_grad"] / steps,
        "gradient_evaluations_per_step": (counts["autograd_grad"] + counts["backward"]) / steps,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "options": config.get("defense_options"),
        "metrics": {k: v for k, v in history[-1].items() if k in ("R@1", "R@2", "mAP", "mAP@R", "NMI")},
    }
    (run / "cost.json").write_text(json.dumps(cost, indent=1) + "\n")


def swipe(args: argparse.Namespace, run: Path, profile: str, log: Path) -> Path:
    out = run / f"swipe-{profile}.json"
    argv = ["swipe", str(run), "-p", profile, "--output", str(out), "--device", args.device, "--no-progress"]
    if args.batch_size is not None:
        argv += ["-b", str(args.batch_size)]
    if args.max_batches is not None:
        argv += ["-m", str(args.max_batches)]
    code = robrank(*argv, log=log)
    if code != 0:
        print(f"compare.py: swipe of {run.name} with {profile} failed (exit {code}); see {log}", file=sys.stderr)
    return out


def one_dataset(args: argparse.Namespace, dataset: str) -> None:
    log = args.work / f"{dataset}.log"
    runs = {d: args.work / f"{dataset}-{d}" for d in args.defenses}
    for defense, run in runs.items():
        with open(log, "a") as handle:
            handle.write(f"\n# train {dataset} {defense}\n")
        train(args, dataset, defense, run, log)
    for profile in args.profiles:  # all models under one profile before the next: partial results stay balanced
        for run in runs.values():
            swipe(args, run, profile, log)


def table(args: argparse.Namespace) -> str:
    rows = ["| dataset | defense | grad evals / step | R@1 | mAP | " + " | ".join(f"ERS {p}" for p in args.profiles)
            + " | queries attacked |",
            "| --- | --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in args.profiles) + " | ---: |"]
    for dataset in args.datasets:
        for defense in args.defenses:
            run = args.work / f"{dataset}-{defense}"
            cost_file = run / "cost.json"
            if not cost_file.exists():
                rows.append(f"| {dataset} | {defense} | (not trained) | | | " + " | ".join("" for _ in args.profiles) + " | |")
                continue
            cost = json.loads(cost_file.read_text())
            metrics = cost["metrics"]
            cells, attacked = [], []
            for profile in args.profiles:
                path = run / f"swipe-{profile}.json"
                if not path.exists():
                    cells.append("(not run)")
                    continue
                payload = json.loads(path.read_text())
                value = (payload.get("ers") or {}).get("ers")  # absent until every attack is done
                count = min((a.get("count", 0) for a in payload.get("attacks", [])), default=0)
                done = len(payload.get("attacks", []))
                partial = count < (payload.get("queries") or 0)
                cells.append("(unfinished)" if value is None else f"{value:.1f}{'*' if partial else ''}")
                attacked.append(f"{profile}: {count} of {payload.get('queries')}, {done} attacks")
            rows.append(f"| {dataset} | {defense} | {cost['gradient_evaluations_per_step']:.2f} | "
                        f"{100 * metrics.get('R@1', float('nan')):.1f} | {100 * metrics.get('mAP', float('nan')):.1f} | "
                        + " | ".join(cells) + f" | {'; '.join(attacked)} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--datasets", default="mnist,fashion")
    parser.add_argument("--backbone", default="c2f2")
    parser.add_argument("--defenses", default=",".join(DEFENSES))
    parser.add_argument("--profiles", default="rob28,rob28-aa")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--pgditer", type=int, default=4, help="inner-attack steps of every defense")
    parser.add_argument("--alpha", type=float, default=24 / 255, help="inner-attack step of every defense (4 x 24/255 crosses eps = 77/255)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--schedule", default="step", choices=("epoch", "step"),
                        help="CA-TRIDE's progress measure: step (t/T, for runs shorter than two epochs) or epoch (e/E, released)")
    parser.add_argument("--lam", type=float, default=None,
                        help="CA-TRIDE's lam [default: the released value for cub/cars/sop, else the package default]")
    parser.add_argument("-b", "--batch-size", type=int, default=32)
    parser.add_argument("-m", "--max-batches", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="datasets measured at once (one process each)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default=None, help=argparse.SUPPRESS)  # a worker: one dataset
    parser.add_argument("--table", action="store_true", help="only print the table of what finished")
    args = parser.parse_args()
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.defenses = [d for d in args.defenses.split(",") if d]
    args.profiles = [p for p in args.profiles.split(",") if p]
    if args.max_steps is not None and args.max_steps < 1:
        args.max_steps = None
    unknown = sorted(set(args.defenses) - set(DEFENSES))
    if unknown:
        parser.error(f"unknown defense(s) {', '.join(unknown)}; choose from {', '.join(DEFENSES)}")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.only:
        one_dataset(args, args.only)
        return 0
    if not args.table:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        pending = list(args.datasets)
        running: list[subprocess.Popen] = []
        while pending or running:
            while pending and len(running) < max(args.jobs, 1):
                dataset = pending.pop(0)
                running.append(subprocess.Popen([sys.executable, *sys.argv, "--only", dataset], env=env))
            time.sleep(5)
            running = [p for p in running if p.poll() is None]
    print(table(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
