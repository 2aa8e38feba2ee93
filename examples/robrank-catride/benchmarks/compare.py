"""CA-TRIDE side by side with ACT and HM at one training budget: clean R@1/mAP and ERS under two profiles.

    python examples/robrank-catride/benchmarks/compare.py --work runs/catride \
        [--datasets mnist,fashion] [--defenses act,hm,catride] [--max-steps 200] [--pgditer 8] \
        [--alpha 0.04706] [--profiles rob28,rob28-aa] [-b 128 -m 2] [--jobs 2] [--device cpu]

For each dataset (one process per dataset, ``--jobs`` at a time) it trains
``DATASET:c2f2 + ptripletN`` with each defense into ``WORK/<dataset>-<defense>`` for
``--max-steps`` steps, all defenses with the same inner-attack steps and step size (CA-TRIDE
with ``schedule=step``: its step α·t/T and its miner margin follow the steps of the run,
because the released code's e/E is 0 throughout a run shorter than two epochs). Training
runs in-process so that the gradient evaluations of each step can be counted: every
``torch.autograd.grad`` call inside the defense (the inner attack) plus the outer backward;
they go to ``cost.json`` in the run. Then every model is swiped with each profile
(``robrank swipe``; ``-m`` attacks only the first batches of queries, a partial result
that the report marks). Finished trainings are skipped and interrupted swipes continue, so
rerunning the same command resumes. The table it prints at the end is what
docs/results.md and the package README quote.

``--backbone rres18 --datasets cub,cars,sop --profiles rob224,rob224-aa`` is the 224-pixel
measurement (a GPU, ``--device cuda``; ``--max-steps`` unset trains the datasets' epochs).
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
from robrank.plugins import get_registry

#: the defenses compared and the options each trains with beyond the common inner budget
DEFENSES: dict[str, dict[str, Any]] = {"act": {}, "hm": {}, "catride": {"schedule": "step"}}


def robrank(*argv: str, log: Path) -> int:
    with open(log, "a") as handle:
        handle.write(f"\n$ robrank {' '.join(argv)}\n")
        handle.flush()
        return subprocess.run([sys.executable, "-m", "robrank", *argv], stdout=handle, stderr=subprocess.STDOUT,
                              check=False).returncode


def train(args: argparse.Namespace, dataset: str, defense: str, run: Path) -> None:
    """Train in this process, counting gradient evaluations per step; writes run/cost.json."""
    if (run / "cost.json").exists():
        return
    import torch

    from robrank.plan import plan_training
    from robrank.training import TrainConfig
    from robrank.training import train as fit

    torch.set_num_threads(1)
    options: dict[str, Any] = {"pgditer": args.pgditer, **DEFENSES[defense]}
    if args.alpha is not None:
        options["alpha"] = args.alpha
    config = TrainConfig(dataset=dataset, backbone=args.backbone, loss="ptripletN", defense=defense,
                         defense_options=options, epochs=args.epochs, max_steps=args.max_steps,
                         device=args.device, num_workers=0, run_dir=str(run), seed=args.seed)
    if (run / "checkpoints" / "last.pt").exists():
        plan = plan_training(TrainConfig(run_dir=str(run), max_steps=args.max_steps), resume=True, registry=get_registry())
    else:
        plan = plan_training(config, registry=get_registry())
    counts: list[int] = []
    calls = [0]
    original_grad = torch.autograd.grad

    def counting_grad(*a: Any, **k: Any) -> Any:
        calls[0] += 1
        return original_grad(*a, **k)

    inner_loss = plan.defense.loss

    def loss(*a: Any, **k: Any) -> Any:
        before = calls[0]
        value = inner_loss(*a, **k)
        counts.append(calls[0] - before)
        return value

    plan.defense.loss = loss
    torch.autograd.grad = counting_grad
    started = time.perf_counter()
    try:
        result = fit(plan, progress=False, registry=get_registry())
    finally:
        torch.autograd.grad = original_grad
    cost = {
        "steps_counted": len(counts),
        "inner_gradients_per_step": sum(counts) / max(len(counts), 1),
        "gradient_evaluations_per_step": 1 + sum(counts) / max(len(counts), 1),
        "train_seconds": round(time.perf_counter() - started, 1),
        "options": plan.defense.settings(),
        "metrics": result.metrics,
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
        train(args, dataset, defense, run)
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
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--pgditer", type=int, default=8, help="inner-attack steps of every defense")
    parser.add_argument("--alpha", type=float, default=12 / 255, help="inner-attack step of every defense")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-b", "--batch-size", type=int, default=128)
    parser.add_argument("-m", "--max-batches", type=int, default=2)
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
