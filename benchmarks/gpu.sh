#!/usr/bin/env bash
# The GPU speed targets (docs/performance.md) and the gpu-marked tests, printed as one table.
#
#   bash benchmarks/gpu.sh [--data-root DIR] [--dry-run] [--skip-tests] [--only swipe28,act28,swipe224,act224]
#
# Needs a CUDA build of torch and robrank: installed (pip install -e ".[test]"), or as the
# wheels that benchmarks/device_wheels.sh puts in .whl (then installed into a temporary folder); downloads
# nothing. Without MNIST/Fashion under --data-root (or $ROBRANK_DATA) it times
# synthetic 28x28 splits of the same sizes and says so. About 6-9 minutes on an H100/H200.
# --dry-run checks the script on a CPU at toy sizes in about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
# $PYTHON if set, else the repository's .venv, else the python on PATH
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
# a bare lent machine: robrank from the wheels of benchmarks/device_wheels.sh
if ! "$PYTHON" -c "import robrank_plugins" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  site=$(mktemp -d)
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/*.whl
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} PATH=$site/bin:$PATH
fi
[ -z "${ROBRANK_DATA:-}" ] && [ -d .data ] && export ROBRANK_DATA=$PWD/.data
exec "$PYTHON" benchmarks/gpu.py "$@"
