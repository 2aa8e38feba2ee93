#!/usr/bin/env bash
# Prepare a bare GPU machine that has torch but no robrank and no internet (a lent device):
# build robrank's wheel and fetch the one dependency such images lack (importlib_metadata),
# into ./.whl, and copy MNIST/Fashion into ./.data. Run it here, where PyPI is reachable:
#
#   bash benchmarks/device_wheels.sh [DATA_ROOT]      # DATA_ROOT default: $ROBRANK_DATA
#
# then send .whl and .data along (both are git-ignored: list them in .git/info/exclude) and run
# `bash benchmarks/gpu.sh` or `bash benchmarks/reproduce_gpu.sh` there: both install .whl/*.whl
# into a temporary folder when robrank is not importable. The wheels are pure Python (py3-none-any).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
DATA=${1:-${ROBRANK_DATA:?pass DATA_ROOT or set ROBRANK_DATA}}
rm -rf .whl && mkdir -p .whl
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation . -w .whl
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d .whl "importlib_metadata==8.7.0"
mkdir -p .data
for d in mnist fashion-mnist; do
  if [ -d "$DATA/$d" ]; then cp -r "$DATA/$d" .data/ && chmod -R u+w ".data/$d"; else echo "no $DATA/$d: not copied" >&2; fi
done
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
grep -qx '/.data/' .git/info/exclude 2>/dev/null || echo '/.data/' >> .git/info/exclude
ls -la .whl; du -sh .data
