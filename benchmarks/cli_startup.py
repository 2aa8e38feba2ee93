"""How fast the CLI answers when no model is involved: ``robrank --help`` and ``robrank list`` next to ``import robrank``.

    python benchmarks/cli_startup.py [--repeats 5] [--command "list --help" --command "list attacks"]

Runs ``python -m robrank --help`` and ``python -m robrank list`` (or each ``--command``) and
``python -c "import robrank"`` in turn, each in a fresh interpreter, and prints the median
wall time and peak memory of each and their ratio to ``import robrank``. Side by side,
because on a shared machine absolute times move with the load while the ratios do not.
Every installed plugin is loaded, as a user's ``robrank`` would; ``torch imported`` says
whether a command pulled it in (it should not: plugins register lazy ``"module:attr"``
factories and declare attack fields and defense options on torch-free declaration classes,
docs/plugins.md). No assertion: a benchmark.
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


def torch_imported(command: list[str]) -> str:
    """``torch imported: True/False`` for one in-process run of ``robrank COMMAND``."""
    probe = subprocess.run([sys.executable, "-c", PROBE, *command], capture_output=True, text=True, check=False)
    return probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "torch imported: ?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--command", action="append", default=None,
                        help="robrank arguments to time, repeatable (default: --help and list)")
    args = parser.parse_args()
    labels = ["import robrank", *(f"robrank {text}" for text in args.command or ["--help", "list"])]
    argvs = {label: [sys.executable, "-c", "import robrank"] for label in labels[:1]}
    argvs.update({label: [sys.executable, "-m", "robrank", *shlex.split(label.removeprefix("robrank "))] for label in labels[1:]})
    for argv in argvs.values():
        measure(argv)  # warm the file cache once
    runs: dict[str, list[tuple[float, float]]] = {label: [] for label in labels}
    for _ in range(args.repeats):
        for label, argv in argvs.items():  # interleaved, so a load change hits every command alike
            runs[label].append(measure(argv))
    seconds = {k: statistics.median(t for t, _ in v) for k, v in runs.items()}
    memory = {k: statistics.median(m for _, m in v) for k, v in runs.items()}
    width = max(map(len, labels))
    print(f"median of {args.repeats} runs, {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    for label in labels:
        line = f"{label:<{width}}  {seconds[label]:.3f} s  {memory[label]:.0f} MiB"
        if label != labels[0]:
            line += f"  {seconds[label] / seconds[labels[0]]:.2f}x import robrank; {torch_imported(argvs[label][3:])}"
        print(line)


if __name__ == "__main__":
    main()
