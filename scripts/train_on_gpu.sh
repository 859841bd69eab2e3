#!/usr/bin/env bash
# A candidate default model trained on a machine with a CUDA GPU and many cores: the shipped model's stage 2
# continued on three times the training phantoms for ten times the patches of a CPU continuation, then its
# stage 1 continued too (two candidates, judged apart on the CPU with scripts/validate_families.py).
#
#     scripts/train_on_gpu.sh [OUT_DIR]    # OUT_DIR: build/gpu_candidate; PYTHON (python3), WORK, JOBS, WORKERS
#     PAIR=1 scripts/train_on_gpu.sh build/gpu_pair    # OUT/plain and OUT/artefacts, side by side, one call
#
# INIT is the model to continue (default: the shipped file); LR, YOUNG (children of 6-9), TYPES_EPOCHS and
# TEETH_EPOCHS set the recipe; ARTEFACTS=1 adds the moving patient and metal's artefacts (--artefact-augment, not in
# the shipped recipe: run it beside one without, from the same INIT, and judge both by the model card's rule,
# scripts/ship_rule.py). PAIR=1 does exactly that in one device call (ARTEFACTS is then not read): the phantoms
# drawn once, then both chains at once on the one GPU, each with half the workers, shorter (TYPES_EPOCHS 2,
# TEETH_EPOCHS 1 unless given: 2 x 2,000 stage-2 steps and 1 x 1,000 stage-1 steps each) so that both fit one call.
# A lent machine has 15 minutes in all, its start included: two runs of the default recipe, 7.3 minutes each on
# 2026-12-04's H200, would not fit. The pair's length is reckoned from that run (stage 2 44 steps/s, stage 1 55
# with 12 workers), not yet timed. TRAIN_CASES, CHILDREN, TYPES_STEPS and TEETH_STEPS shrink a smoke run. The
# model shipped on 2026-12-04 came from INIT = git 660c051's file and the other defaults:
#     git show 660c051:Resources/Models/teethseg-default.pt > build/parent.pt; INIT=build/parent.pt ...
# The contacts branch (since 2026-12-05) reads stage 2's trunk: a candidate with a new stage 2 needs its branch
# trained again before it is judged (on the CPU, about 13 minutes on 2 cores; the model card has the command with
# --stages contacts --init OUT/both.pt).
#
# The phantoms are drawn side by side (--jobs), the cases read side by side and the patches drawn by DataLoader
# workers (--workers): one process cannot feed the GPU. Training is mixed precision (CUDA's float16 autocast).
# Each step has a time limit (the CUDA check 20 s, drawing 90 s, stage 2 320 s, stage 1 150 s, each + 5 s to be
# killed: 600 s at worst, a device call's limit); whatever finished lies in OUT_DIR with its log, and the exit
# status is the first failing step's. The phantoms in WORK are drawn afresh (KEEP_PHANTOMS=1 keeps them: drawing
# takes about a minute on 16 cores). In PAIR mode each chain's lines reach the output as they come, prefixed with
# its name. Run from the repository root.
set -u
OUT=${1:-build/gpu_candidate}
PY=${PYTHON:-python3}
WORK=${WORK:-/tmp/teethseg-gpu-train}
JOBS=${JOBS:-$(nproc)}
PAIR=${PAIR:-0}
WORKERS=${WORKERS:-12}
[ "$PAIR" = 1 ] && WORKERS=$(( (WORKERS + 1) / 2 ))  # two chains share the CPU that feeds the GPU
INIT=${INIT:-Resources/Models/teethseg-default.pt}
LR=${LR:-0.001}
YOUNG=${YOUNG:-12}
TYPES_EPOCHS=${TYPES_EPOCHS:-$([ "$PAIR" = 1 ] && echo 2 || echo 5)}
TEETH_EPOCHS=${TEETH_EPOCHS:-$([ "$PAIR" = 1 ] && echo 1 || echo 3)}
TYPES_STEPS=${TYPES_STEPS:-2000}
TEETH_STEPS=${TEETH_STEPS:-1000}
mkdir -p "$OUT"
# No candidate of an earlier run may be taken for this one's (a stage 1 never continues an old stage 2 either).
rm -f "$OUT"/types.pt* "$OUT"/both.pt* "$OUT"/plain/*.pt* "$OUT"/artefacts/*.pt*
[ "${KEEP_PHANTOMS:-0}" = 1 ] || rm -rf "$WORK/train"  # the trainer takes every case in the folder
export PYTHONUNBUFFERED=1
STATUS=0
step() { echo "== $1 ($(date +%T))"; }
limit() {
  local s=$1; shift
  timeout --kill-after=5 "$s" "$@"
  local rc=$?
  [ $rc -eq 0 ] || echo "!! exit $rc from: $*"
  return $rc
}
record() { [ "$1" -eq 0 ] || [ "$STATUS" -ne 0 ] || STATUS=$1; }  # a step in a pipeline runs in a subshell
# The training set: adults (seeds 100-219, every field of view), children of 6-14 (5000-5047) and of 6-9
# (5100-5111 with YOUNG=12); none of these seeds is used by any validation (10000+, 20000+, 30000+, 40000+, 46000+,
# 50000+).
DATA=(--work "$WORK" --train-cases "${TRAIN_CASES:-120}" --children "${CHILDREN:-48}" --young-children "$YOUNG"
      --types-classes 14 --jobs "$JOBS" --workers "$WORKERS" --val-fovs --val-ages)

# Stage 2 from INIT, then stage 1 from that candidate, into DIR (extra training options after it).
chain() {
  local dir=$1 status=0; shift
  mkdir -p "$dir"
  step "$dir: stage 2 (types) from $INIT: $TYPES_EPOCHS x $TYPES_STEPS steps of 8 patches${*:+, $*}"
  limit 320 "$PY" scripts/train_default_model.py "${DATA[@]}" "$@" --output "$dir/types.pt" --stages types \
    --init "$INIT" --types-epochs "$TYPES_EPOCHS" --types-steps "$TYPES_STEPS" --batch 8 --lr "$LR" \
    2>&1 | grep --line-buffered -v "step [0-9]*/" | tee "$dir/types.log"
  status=${PIPESTATUS[0]}
  step "$dir: stage 1 (teeth) from that candidate: $TEETH_EPOCHS x $TEETH_STEPS steps of 8 patches${*:+, $*}"
  if [ ! -f "$dir/types.pt" ]; then
    echo "!! no stage 2 from this run: stage 1 skipped"
    [ "$status" -ne 0 ] || status=1
    return "$status"
  fi
  limit 150 "$PY" scripts/train_default_model.py "${DATA[@]}" "$@" --output "$dir/both.pt" \
    --stages teeth --init "$dir/types.pt" --teeth-epochs "$TEETH_EPOCHS" --teeth-steps "$TEETH_STEPS" --batch 8 \
    --lr "$LR" 2>&1 | grep --line-buffered -v "step [0-9]*/" | tee "$dir/teeth.log"
  local teeth=${PIPESTATUS[0]}
  [ "$status" -ne 0 ] || status=$teeth
  return "$status"
}

step environment
limit 20 "$PY" -c "import os, torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0), '|',
os.cpu_count(), 'CPU cores')" || { echo "!! no CUDA GPU in this Python: stopping"; exit 1; }

step "training phantoms, $JOBS side by side"
limit 90 "$PY" scripts/train_default_model.py "${DATA[@]}" --draw-only 2>&1 | tail -n 3
drawn=${PIPESTATUS[0]}
record "$drawn"
# One chain draws what is missing itself; two at once would each draw all of it, in the time of their training.
if [ "$drawn" -ne 0 ] && [ "$PAIR" = 1 ]; then
  echo "!! the phantoms are not all drawn: no pair trained (rerun with KEEP_PHANTOMS=1 to keep those drawn)"
  exit "$STATUS"
fi

# Both chains at once; each one's exit status goes to a file (a background pipeline's own is its last command's).
pair_member() {
  local name=$1; shift
  { chain "$OUT/$name" "$@"; echo $? > "$OUT/$name.status"; } 2>&1 | tee "$OUT/$name.log" | sed -u "s/^/$name: /"
}
if [ "$PAIR" = 1 ]; then
  rm -f "$OUT"/plain.status "$OUT"/artefacts.status
  pair_member plain &
  pair_member artefacts --artefact-augment &
  wait
  for name in plain artefacts; do record "$(cat "$OUT/$name.status" 2>/dev/null || echo 1)"; done
else
  if [ "${ARTEFACTS:-0}" = 1 ]; then chain "$OUT" --artefact-augment; else chain "$OUT"; fi
  record $?
fi
step done
ls -laR "$OUT"
exit $STATUS
