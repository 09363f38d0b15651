#!/usr/bin/env bash
# Every GPU check of the speed (11) and sweeps (8) issues in one go, for a session that is lent a GPU
# (`make gpu-checks`). Prints one table per check; copy them into the issue note with the machine name.
# A failing check is reported and the others still run (exit status 1 at the end). CHECKS="1 2a" runs a
# subset (the device tool allows 10 minutes per command: the compiled check 2a alone compiles U-Net 64 four
# times). SMOKE=1 runs the same commands tiny on the CPU (that is the test).
#
#   1   ece-bench loss on CUDA at 16x2x512x512: every registry loss / torch CE, fwd+bwd.
#   2a  ece-bench train on CUDA: U-Net 64 (depth 4) at 512^2, batch 16, bf16-mixed, channels-last, compiled,
#       paper augmentation in 8 loader processes: Lightning vs the bare loop vs the resident-batch ceiling
#       (anchor: 383 img/s on an H200 for the bare compiled loop, README "Speed").
#   2b  the same, not compiled.
#   3   Lightning's simple profiler on two epochs of ece-train at that size (where the step time goes).
#   4   with >= 2 GPUs: trainer=ddp on 2 GPUs, and a 2-job sweep through the GPU pool (one GPU per job).
#   5   LONG=1 only: paper_segmentation on CPM-15, CE and ECE at 0.3 and 1.0, 300 epochs, bf16.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-outputs/gpu_checks}
CHECKS=${CHECKS:-1 2a 2b 3 4 5}
mkdir -p "$OUT"

if [[ "${SMOKE:-0}" == 1 ]]; then
  DEVICE=cpu; SIZE=32; BATCH=2; WIDTH=4; DEPTH=2; WORKERS=2; STEPS=3; WARMUP=1; PRECISION=32
  COMPILE=(); LOSS_SHAPE=(--shape 2 2 32 32); TRAINER=(trainer=cpu); GPUS=0
  TINY=(dataset.image_size=32 dataset.num_train=4 dataset.num_val=2 dataset.num_test=2 dataset.batch_size=2)
else
  # Warm-up beyond the 2 x 8 batches the workers queue up front, so the timed steps wait for real loading.
  DEVICE=cuda; SIZE=512; BATCH=16; WIDTH=64; DEPTH=4; WORKERS=8; STEPS=80; WARMUP=20
  PRECISION=bf16-mixed; COMPILE=(--compile); LOSS_SHAPE=(); TRAINER=(trainer=gpu)
  GPUS=$("$BIN/python" -c "import torch; print(torch.cuda.device_count())")
  TINY=(dataset.image_size=512 dataset.num_train=32 dataset.num_val=4 dataset.num_test=4 dataset.batch_size=16)
  nvidia-smi -L
fi
"$BIN/python" -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else '')"

FAILED=()
wanted() { [[ " $CHECKS " == *" $1 "* ]]; }
check() {  # check NAME TITLE COMMAND...: run it, keep its whole output in $OUT/NAME.log, note a failure
  local name=$1 title=$2
  shift 2
  wanted "$name" || wanted "${name:0:1}" || return 0
  echo "## $name. $title"
  if ! "$@" > "$OUT/$name.log" 2>&1; then
    FAILED+=("$name")
    echo "FAILED (last lines of $OUT/$name.log):"
    tail -15 "$OUT/$name.log"
    return 0
  fi
  grep -E "^\||^\(|overhead|End to end|resuming|metrics" "$OUT/$name.log" || tail -5 "$OUT/$name.log"
}
train_bench() {
  "$BIN/ece-bench" train --device "$DEVICE" --size "$SIZE" --batch-size "$BATCH" --width "$WIDTH" --depth "$DEPTH" \
    --precision "$PRECISION" --channels-last --workers "$WORKERS" --augment paper --steps "$STEPS" \
    --warmup "$WARMUP" "$@"
}

check 1 "loss fwd+bwd vs torch CE ($DEVICE)" "$BIN/ece-bench" loss --device "$DEVICE" "${LOSS_SHAPE[@]}" --repeats 20
check 2a "training step, compiled" train_bench --repeats 1 "${COMPILE[@]}"
check 2b "training step, not compiled" train_bench --repeats 2
if wanted 3; then
  echo "## 3. profile of ece-train steps (Lightning's simple profiler)"
  if "$BIN/ece-train" "${TRAINER[@]}" "${TINY[@]}" trainer.max_epochs=2 model.base_channels="$WIDTH" \
      model.depth="$DEPTH" speed.channels_last=true dataset.num_workers="$WORKERS" logger=none \
      +trainer.profiler=simple hydra.run.dir="$OUT/profile" > "$OUT/3.log" 2>&1; then
    grep -E "Action|run_training_batch|optimizer_step|training_step|backward|train_dataloader_next|validation_step|Total" \
      "$OUT/3.log" | sed -n "1,20p"
  else
    FAILED+=(3); echo "FAILED:"; tail -15 "$OUT/3.log"
  fi
fi
if wanted 4 || wanted 4a || wanted 4b; then
  if (( GPUS >= 2 )); then
    check 4a "trainer=ddp on 2 GPUs" "$BIN/ece-train" trainer=ddp trainer.devices=2 "${TINY[@]}" trainer.max_epochs=3 \
      logger=none hydra.run.dir="$OUT/ddp"
    check 4b "two jobs through the GPU pool" "$BIN/ece-train" -m hydra/launcher=local_gpus gpu_pool=auto \
      trainer=gpu "${TINY[@]}" trainer.max_epochs=3 logger=none sparsity=0.3,1.0 hydra.sweep.dir="$OUT/pool"
  else
    echo "## 4. skipped: $GPUS GPU(s), the DDP and GPU-pool checks need 2"
  fi
fi
if wanted 5 && [[ "${LONG:-0}" == 1 ]]; then
  check 5 "paper_segmentation on CPM-15, CE/ECE x 0.3/1.0, 300 epochs" "$BIN/ece-train" -m \
    experiment=paper_segmentation dataset=cpm15 loss=ce,ece sparsity=0.3,1.0 logger=csv hydra.sweep.dir="$OUT/paper_cpm15"
  if [[ " ${FAILED[*]} " != *" 5 "* ]]; then
    check 5r "its table" "$BIN/ece-report" "$OUT/paper_cpm15"
  fi
fi

if (( ${#FAILED[@]} )); then
  echo "failed checks: ${FAILED[*]}"
  exit 1
fi
echo "all checks ran"
