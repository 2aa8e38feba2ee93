"""ERS under ``rob28`` vs ``rob28-aa`` (or any two profiles) on undefended, EST and ACT models.

    python benchmarks/autoattack.py --dataset mnist --backbone c2f2 --work runs/aa \
        [--models none,est,act] [--epochs 1] [--max-steps N] [--pgditer 8] [--alpha 0.04706] \
        [--profiles rob28,rob28-aa] [-b 128 -m 8] [--device auto]

For each model it trains ``DATASET:BACKBONE{,d,p}:ptripletN`` into ``WORK/<dataset>-<model>``
(skipped when that run already has a checkpoint), swipes it with each profile (a swipe
that was interrupted continues), then prints ``robrank report -f markdown`` of all the
results (its search-cost table gives each profile's gradient evaluations per query and, for
worst-case profiles, the share of queries where a search beat plain PGD) and the wall time
of each swipe.
``-m`` limits each attack to its first batches: the report marks such rows partial. Every
step is a plain robrank command, so the work directory is an ordinary set of runs.
docs/autoattack.md holds the figures measured with it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

#: the -C model suffix of each defense (the reference's names: d = EST, p = ACT)
SUFFIX = {"none": "", "est": "d", "act": "p"}


def robrank(*argv: str, log: Path) -> None:
    """``robrank ARGV`` in a fresh process; its output goes to ``log``, a failure stops the benchmark."""
    with open(log, "a") as handle:
        handle.write(f"\n$ robrank {' '.join(argv)}\n")
        handle.flush()
        code = subprocess.run([sys.executable, "-m", "robrank", *argv], stdout=handle, stderr=subprocess.STDOUT, check=False).returncode
    if code != 0:
        sys.exit(f"benchmarks/autoattack.py: robrank {argv[0]} failed (exit {code}); see {log}")


def train(args: argparse.Namespace, model: str, run: Path, log: Path) -> None:
    if (run / "checkpoints" / "last.pt").exists():
        return
    argv = ["train", "-C", f"{args.dataset}:{args.backbone}{SUFFIX[model]}:ptripletN", "--run-dir", str(run),
            "--epochs", str(args.epochs), "--device", args.device, "--no-progress"]
    if args.max_steps is not None:
        argv += ["--max-steps", str(args.max_steps)]
    if model != "none":  # the defense's inner attack; the reference's own is 32 steps of 3/255
        argv += ["--pgditer", str(args.pgditer), "--alpha", str(args.alpha)]
    robrank(*argv, log=log)


def swipe(args: argparse.Namespace, run: Path, profile: str, log: Path) -> Path:
    out = run / f"swipe-{profile}.json"
    argv = ["swipe", str(run), "-p", profile, "--output", str(out), "--device", args.device, "--no-progress"]
    if args.batch_size is not None:
        argv += ["-b", str(args.batch_size)]
    if args.max_batches is not None:
        argv += ["-m", str(args.max_batches)]
    robrank(*argv, log=log)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--backbone", default="lenet")
    parser.add_argument("--work", type=Path, required=True, help="run directories and the log (reused: finished steps are skipped)")
    parser.add_argument("--models", default="none,est,act", help="comma-separated, from none, est, act")
    parser.add_argument("--profiles", default="rob28,rob28-aa", help="comma-separated swipe profiles")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=None, help="stop each training after this many steps")
    parser.add_argument("--pgditer", type=int, default=8, help="the defenses' inner attack steps")
    parser.add_argument("--alpha", type=float, default=12 / 255, help="the defenses' inner attack step")
    parser.add_argument("-b", "--batch-size", type=int, default=None)
    parser.add_argument("-m", "--max-batches", type=int, default=None, help="attack only the first batches (a partial result)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(SUFFIX))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(SUFFIX)}")
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "autoattack.log"
    files: list[Path] = []
    for model in models:
        run = args.work / f"{args.dataset}-{model}"
        train(args, model, run, log)
        files += [swipe(args, run, profile.strip(), log) for profile in args.profiles.split(",") if profile.strip()]
    report = subprocess.run([sys.executable, "-m", "robrank", "report", "-f", "markdown", *map(str, files)],
                            capture_output=True, text=True, check=False)
    print(report.stdout if report.returncode == 0 else report.stderr)
    print("| results | queries attacked | wall |")
    print("| --- | ---: | ---: |")
    for path in files:
        payload = json.loads(path.read_text())
        count = min(a["count"] for a in payload["attacks"])
        print(f"| {path.parent.name}/{payload['profile']} | {count} of {payload['queries']} | {payload['timings']['total_seconds'] / 60:.1f} min |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
