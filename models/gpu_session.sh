#!/usr/bin/env bash
# The one prepared H200 call of issue 23 (lesion classifier v2): the plan's runs side by side, ~9 minutes.
#
# From a session that has a GPU (the `run` tool; the model card's "What would close the gaps" has the call):
#   bash models/gpu_session.sh                      # carry: the four .devdata files checked below
# What comes back in $OUT (7 files at most): log.txt, summary.json, preds.npz, the chosen runs' weights.
# On the CPU, a smoke test of the same path (the device's packages are torch, opencv, sklearn, no pydantic):
#   REQUIRE_GPU=0 PY=.venv-train/bin/python OUT=/tmp/s PLAN=... EXTRA="--limit 300 --steps 3 --size 96" \
#     bash models/gpu_session.sh
set -o pipefail
cd "$(dirname "$0")/.." || exit 2
export PYTHONUNBUFFERED=1
export LITE0_WEIGHTS="${LITE0_WEIGHTS:-.devdata/lite0-body.pth}"  # the ImageNet weights without their head
PY="${PY:-python3}"                  # the device's python3 holds torch with CUDA
PLAN="${PLAN:-models/plans/h200.json}"
BUDGET="${BUDGET:-500}"              # seconds for all runs; the call's timeout_s must exceed it by ~60 s
OUT="${OUT:?set OUT (the device sets it)}"
mkdir -p "$OUT"
LOG="$OUT/log.txt"
date -u +"start %FT%TZ" | tee "$LOG"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv | tee -a "$LOG"
# preflight (seconds): what is missing ends the call at once, so that a corrected rerun still fits
for f in .devdata/pack.npz .devdata/lesion_boxes.npz .devdata/ph2.npz "$LITE0_WEIGHTS"; do
  [ -s "$f" ] || { echo "missing $f: make it (python -m models.canvas ...) and carry it" | tee -a "$LOG"; exit 2; }
done
"$PY" - "$PLAN" "${REQUIRE_GPU:-1}" <<'PY' 2>&1 | tee -a "$LOG" || exit 3
import sys
import numpy as np
import torch
import models.canvas, models.gpu_child, models.gpu_predict  # noqa: F401 - the runs' imports
from models.canvas import load_boxes
from models.gpu_run import read_plan
from models.sources import pack_meta
plan = read_plan(sys.argv[1])
load_boxes(".devdata/lesion_boxes.npz", pack_meta(".devdata/pack.npz")["isic_id"])
made_by = str(np.load(".devdata/lesion_boxes.npz").get("segmentation", "unknown"))
if made_by != models.canvas.segmentation_digest():
    print("WARNING: .devdata/lesion_boxes.npz was made by other lesion-segmentation code than this tree's "
          "(edge/classifier.py, edge/quality): reg-lesion trains on those older squares")
assert "pydantic" not in sys.modules, "the training side must not need the kiosk's pydantic"
if sys.argv[2] == "1":
    assert torch.cuda.is_available(), "no CUDA device"
print(f"preflight ok: torch {torch.__version__}, numpy {np.__version__}, cuda {torch.cuda.is_available()}, "
      f"{len(plan['runs'])} runs: {', '.join(r['name'] for r in plan['runs'])}")
PY
# shellcheck disable=SC2086 - EXTRA is a list of options
"$PY" -m models.gpu_run plan --plan "$PLAN" --pack .devdata/pack.npz --work "${WORK:-/tmp/gpu-work}" \
  --out "$OUT" --budget "$BUDGET" ${EXTRA:-} 2>&1 | tee -a "$LOG"
rc=$?
date -u +"end %FT%TZ rc=$rc" | tee -a "$LOG"
ls -la "$OUT" | tee -a "$LOG"
exit $rc
