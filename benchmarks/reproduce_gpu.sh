#!/usr/bin/env bash
# Rows of the published table that need a GPU (EST, ACT), several at once on one GPU, inside
# one bounded call of a lent machine.
#
#   OUT=DIR DEADLINE=520 bash benchmarks/reproduce_gpu.sh [ROWS]
#
# ROWS defaults to mnist-est,fashion-est, the rows still unmeasured (docs/results.md); any
# rows or variants of benchmarks/reproduce.py can be named. Measured on one H200 (torch
# 2.11): four rows at once train at 55-58 s per epoch each (8 epochs: about 7.5 min, too
# long for one 10-minute call with the swipes); two at once at about 38 s per epoch, so two
# rows with their swipes fit in one call (about 6 min). Each row is one
# `benchmarks/reproduce.py --rows ROW --device cuda` process (so one `robrank run`: 8 epochs of
# training, then the full rob28 swipe); C2F2 leaves most of an H100/H200 idle, so the rows
# share the card. Expects MNIST/Fashion under $ROBRANK_DATA (default ./.data) and, when robrank
# is not installed, its wheel (and importlib_metadata's) under ./.whl, installed into a temporary folder.
#
# Whatever happens, at $DEADLINE seconds after the start (default 520) it stops waiting and
# packs into $OUT: the run directories without checkpoints and every log (runs.tgz), and a
# slim copy of each checkpoint (weights, no optimizer state: about 15 MB for C2F2) so that a
# row whose swipe did not finish can be swiped elsewhere with `robrank swipe`. If the short
# smoke row (`--small`, about half a minute) fails, everything stops at once so that the
# lease is not spent on rows that would fail the same way.
#
# SMALL=1 runs every row with reproduce.py --small (a plumbing check, e.g. on a CPU with
# DEVICE=cpu).
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
OUT=${OUT:-runs/reproduce-gpu-out}
DEADLINE=${DEADLINE:-520}
DEVICE=${DEVICE:-cuda}
ROWS=${1:-mnist-est,fashion-est}
RUNS=${RUNS:-runs/gpu}
PYTHON=${PYTHON:-python3}
export ROBRANK_DATA=${ROBRANK_DATA:-$PWD/.data}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
LOGS="$RUNS/logs"
mkdir -p "$OUT" "$LOGS"
elapsed() { echo $(( $(date +%s) - START )); }
say() { echo "[reproduce_gpu $(elapsed)s] $*"; }

if ! "$PYTHON" -c "import robrank_plugins" 2>/dev/null || [ -n "${FORCE_WHEELS:-}" ]; then
  site=$(mktemp -d)
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/*.whl || exit 3
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} PATH=$site/bin:$PATH
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" -c "import torch, robrank; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 3

small=()
[ -n "${SMALL:-}" ] && small=(--small)
pids=()
names=()
for row in ${ROWS//,/ }; do
  "$PYTHON" benchmarks/reproduce.py "${small[@]}" --rows "$row" --device "$DEVICE" --out-root "$RUNS" \
    --results-md "$RUNS/results-$row.md" --results-dir "$RUNS/results" > "$LOGS/$row.log" 2>&1 &
  pids+=($!); names+=("$row")
done
say "started ${names[*]}"
# the smoke row: a few steps of every stage (training with ACT, the swipe) on the same device
smoke_dir=$(mktemp -d)
rm -rf "$smoke_dir"
if ! timeout 180 "$PYTHON" benchmarks/reproduce.py --small --rows mnist-act --device "$DEVICE" --out-root "$smoke_dir" \
    --results-md "$smoke_dir/results.md" --results-dir "$smoke_dir/results" > "$LOGS/smoke.log" 2>&1; then
  say "SMOKE FAILED: stopping every row"; tail -40 "$LOGS/smoke.log"
  kill "${pids[@]}" 2>/dev/null
  for row in "${names[@]}"; do echo "== $row"; tail -5 "$LOGS/$row.log"; done
  exit 4
fi
say "smoke passed"

while :; do
  running=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && running=$((running + 1)); done
  [ "$running" -eq 0 ] && break
  if [ "$(elapsed)" -ge "$DEADLINE" ]; then say "deadline: $running row(s) still running, packing what is there"; break; fi
  sleep 5
done
status=0
for i in "${!pids[@]}"; do
  if kill -0 "${pids[$i]}" 2>/dev/null; then say "${names[$i]}: unfinished"; status=5
  elif wait "${pids[$i]}"; then say "${names[$i]}: done"
  else say "${names[$i]}: FAILED"; tail -15 "$LOGS/${names[$i]}.log"; status=6; fi
done

tar czf "$OUT/runs.tgz" --exclude=checkpoints "$RUNS" 2>/dev/null
for row in "${names[@]}"; do
  ckpt="$RUNS/$row/checkpoints/last.pt"
  [ -f "$ckpt" ] && "$PYTHON" - "$ckpt" "$OUT/$row.slim.pt" <<'EOF'
import sys, torch
payload = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
payload["optimizers"] = []  # weights, config and counters only: enough to swipe or evaluate
torch.save(payload, sys.argv[2])
EOF
done
ls -la "$OUT"
for row in "${names[@]}"; do echo "== $row"; tail -4 "$LOGS/$row.log"; done
say "exit $status"
exit $status
