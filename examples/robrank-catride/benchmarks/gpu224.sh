#!/usr/bin/env bash
# CA-TRIDE next to ACT and HM at 224 px (ResNet-18, ImageNet weights, the released code's
# settings: 75 epochs, 56 SPC-2 pairs, Adam 1e-5, eps 8/255, alpha 1/255), swiped with rob224
# and rob224-aa. Needs a CUDA GPU, CUB/Cars/SOP under $ROBRANK_DATA and ImageNet weights;
# not run in this project so far (no GPU was lent to this task).
#
#   bash examples/robrank-catride/benchmarks/gpu224.sh WORKDIR [DATASETS] [EXTRA compare.py OPTIONS]
#
# Equal budget: every defense runs 16 inner steps (CA-TRIDE's own; ACT and HM default to 32),
# CA-TRIDE with its released e/E step decay (schedule=epoch) over the full 75 epochs. lam is
# the released per-dataset value when one dataset is given (cub 10, cars 9.5, sop 2); pass
# DATASETS one at a time for that. -m 4 -b 56 attacks the first 224 queries (a partial row).
set -euo pipefail
cd "$(dirname "$0")/../../.."
work=${1:?usage: gpu224.sh WORKDIR [DATASETS] [compare.py options]}
datasets=${2:-cub}
shift $(( $# >= 2 ? 2 : 1 ))
exec "${PYTHON:-python}" examples/robrank-catride/benchmarks/compare.py --work "$work" --datasets "$datasets" \
    --backbone resnet18 --epochs 75 --max-steps 0 --pgditer 16 --alpha 0.0039216 --schedule epoch \
    --profiles rob224,rob224-aa -b 56 -m 4 --jobs 1 --device cuda "$@"
