"""How fast the CLI answers when no model is involved: ``robrank --help`` next to ``import robrank``.

    python benchmarks/cli_startup.py [--repeats 5] [--command "list --help"]

Runs ``python -m robrank --help`` (or ``--command``) and ``python -c "import robrank"``
alternately, each in a fresh interpreter, and prints the median wall time and peak memory of
each and their ratio. Side by side, because on a shared machine absolute times move with the
load while the ratio does not. Every installed plugin is loaded, as a user's ``robrank``
would; ``torch imported`` says whether the command pulled it in (it should not: plugins
register lazy ``"module:attr"`` factories, docs/plugins.md). No assertion: a benchmark.
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time

#: a child that runs the command in-process, then says whether torch was imported
PROBE = (
    "import sys, runpy\n"
    "sys.argv = ['robrank', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('robrank', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "sys.stderr.write('torch imported: %s\\n' % ('torch' in sys.modules))\n"
)


def measure(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one run of ``argv``."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    return elapsed, usage.ru_maxrss / 1024.0  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--command", default="--help", help="robrank arguments to time (default: --help)")
    args = parser.parse_args()
    command = shlex.split(args.command)
    cli = [sys.executable, "-m", "robrank", *command]
    bare = [sys.executable, "-c", "import robrank"]
    measure(cli), measure(bare)  # warm the file cache once
    runs: dict[str, list[tuple[float, float]]] = {"cli": [], "import": []}
    for _ in range(args.repeats):
        runs["cli"].append(measure(cli))
        runs["import"].append(measure(bare))
    probe = subprocess.run([sys.executable, "-c", PROBE, *command], capture_output=True, text=True, check=False)
    imported = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "torch imported: ?"
    seconds = {k: statistics.median(t for t, _ in v) for k, v in runs.items()}
    memory = {k: statistics.median(m for _, m in v) for k, v in runs.items()}
    label = f"robrank {args.command}"
    width = max(len(label), len("import robrank"))
    print(f"median of {args.repeats} runs, {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    print(f"{label:<{width}}  {seconds['cli']:.3f} s  {memory['cli']:.0f} MiB")
    print(f"{'import robrank':<{width}}  {seconds['import']:.3f} s  {memory['import']:.0f} MiB")
    print(f"ratio {seconds['cli'] / seconds['import']:.2f}x the time of import robrank; {imported}")


if __name__ == "__main__":
    main()
