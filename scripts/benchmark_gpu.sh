#!/usr/bin/env bash
# The GPU path's figures (issue 17, item 7) in one run on a machine with a CUDA GPU: `segment` on a crop and a
# whole head (float32 and bfloat16 autocast), the reference networks' pass, training steps with mixed precision,
# fine-tuning on two corrected scans, one-rank torchrun (DDP) against a plain run, and the 50 family scans
# segmented on the GPU in float32 and bfloat16 (accuracy: compare with the model card's CPU figures).
#
#     scripts/benchmark_gpu.sh [OUT_DIR] | tee log    # OUT_DIR: build/benchmark_gpu; PYTHON (python3), WORK
#
# Phase 1 makes the inputs and runs the family scans in parallel (the machine is busy: no timings kept from
# it); phase 2 times one thing at a time on the quiet machine. Each step has a time limit, so the run always
# ends with its figures in OUT_DIR: families.tgz (the family scans' JSON and logs), training_logs.tgz.
# That Python needs torch with CUDA, numpy, scipy and pynrrd (vtk too for STL; without it segment skips STL),
# and the repository on PYTHONPATH when the package is not installed. Run from the repository root.
set -u
OUT=${1:-build/benchmark_gpu}
PY=${PYTHON:-python3}
WORK=${WORK:-/tmp/teethseg-gpu}
SKIP=${SKIP:-}  # steps to leave out: inputs families segment steps finetune train (e.g. SKIP="families")
TRAIN_WORKERS=${TRAIN_WORKERS:-4}  # the CPU draws and augments the patches: one process cannot feed the GPU
mkdir -p "$OUT" "$WORK/val"
export PYTHONUNBUFFERED=1
step() { echo "== $1 ($(date +%T))"; }
skipped() { [[ " $SKIP " == *" $1 "* ]]; }
STL=()
"$PY" -c "import vtk" 2>/dev/null || { STL=(--no-stl); echo "no vtk in this Python: segment without STL"; }
limit() { local s=$1; shift; timeout --kill-after=5 "$s" "$@" || echo "!! exit $? from: $*"; }

step environment
"$PY" -c "import os, platform, torch; print('python', platform.python_version(), '| torch', torch.__version__,
'| cuda', torch.version.cuda, '|', torch.cuda.get_device_name(0), '|', os.cpu_count(), 'CPU cores')"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader

step "phase 1: inputs and the family scans (float32, then bfloat16, on cuda)"
skipped inputs || limit 150 "$PY" scripts/benchmark_segment.py --fov both --prepare --cache "$WORK/bench" &
skipped inputs || limit 150 "$PY" scripts/benchmark_finetune.py --prepare --work "$WORK/finetune" &
skipped families || for fam in A B; do
  for fov in crop jaws head lower upper; do
    (for precision in float32 bfloat16; do
       OMP_NUM_THREADS=2 "$PY" scripts/validate_families.py --device cuda --precision "$precision" --families "$fam" \
         --fovs "$fov" --head-spacing 0.4 --work "$WORK/families" --out "$WORK/val/${fam}_${fov}_${precision}.json" \
         2>>"$WORK/val/${fam}_${fov}.log" >/dev/null
     done) &
  done
done
deadline=$((SECONDS + 180))
while [ -n "$(jobs -rp)" ] && [ $SECONDS -lt $deadline ]; do sleep 2; done
pkill -f validate_families.py; wait
echo "family runs done: $(grep -c "ident" "$WORK"/val/*.log | awk -F: '{s += $2} END {print s}') of 100 scans"
skipped families || tar czf "$OUT/families.tgz" -C "$WORK" val

step "phase 2a: segment, float32 (cuDNN's default TF32 convolutions), with the reference networks"
skipped segment || limit 120 "$PY" scripts/benchmark_segment.py --fov both --baseline --device cuda --warmup --cache "$WORK/bench" \
  "${STL[@]}"
step "phase 2b: segment, bfloat16 autocast"
skipped segment || limit 75 "$PY" scripts/benchmark_segment.py --fov both --device cuda --warmup --precision bfloat16 \
  --cache "$WORK/bench" "${STL[@]}"
step "phase 2c: training steps (mixed precision)"
skipped steps || limit 45 "$PY" scripts/benchmark_train.py --devices cuda --steps 10 --batch 4
step "phase 2d: fine-tuning on two corrected scans"
skipped finetune || limit 120 "$PY" scripts/benchmark_finetune.py --device cuda --threads 8 --work "$WORK/finetune"
step "phase 2e: train 1 epoch x 40 steps a stage on 4 scans, plain and under torchrun (1 rank: DDP's cost)"
skipped train || for launcher in plain torchrun; do
  start=$EPOCHREALTIME
  if [ "$launcher" = plain ]; then run=("$PY" -m TeethSegmentationLib); else
    run=("$PY" -m torch.distributed.run --standalone --nproc_per_node=1 -m TeethSegmentationLib); fi
  limit 50 "${run[@]}" train --data "$WORK/finetune/far_test" --output "$WORK/ddp_$launcher.pt" --device cuda \
    --epochs 1 --steps-per-epoch 40 --patch 64 --batch 8 --val-fraction 0 --workers "$TRAIN_WORKERS" \
    2>"$WORK/ddp_$launcher.log" >/dev/null
  echo "$launcher: $("$PY" -c "print(round($EPOCHREALTIME - $start, 1))") s from process start to exit"
  grep -E "loss [0-9.]+$" "$WORK/ddp_$launcher.log" | grep -v step | tail -2
done

step pack
skipped train || tar czf "$OUT/training_logs.tgz" -C "$WORK" $(cd "$WORK" && ls ddp_*.log 2>/dev/null)
ls -la "$OUT"
