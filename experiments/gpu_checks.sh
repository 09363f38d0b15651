#!/usr/bin/env bash
# Every GPU check of the speed (11) and sweeps (8) issues in one go, for a session that is lent a GPU
# (`make gpu-checks`; ~6-8 minutes on an H100/H200 after installation). Prints one table per check; copy
# them into the issue note with the machine name. SMOKE=1 runs the same commands tiny on the CPU (a test).
#
#   1. ece-bench loss on CUDA at 16x2x512x512: every registry loss / torch CE, fwd+bwd.
#   2. ece-bench train on CUDA: U-Net 64 (depth 4) at 512^2, batch 16, bf16-mixed, channels-last, compiled,
#      paper augmentation in 8 loader processes: Lightning vs the bare loop vs the resident-batch ceiling
#      (REFERENCE.md: 383 img/s on an H200 for the bare compiled loop); then the same without compile.
#   3. A short Lightning profile of that training (simple profiler: where the step's time goes).
#   4. With >= 2 GPUs: trainer=ddp on 2 GPUs, and a 2-job sweep through the GPU pool (one GPU per job).
#   5. LONG=1 only: paper_segmentation on CPM-15, CE and ECE at 0.3 and 1.0, 300 epochs, bf16.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-outputs/gpu_checks}
mkdir -p "$OUT"

if [[ "${SMOKE:-0}" == 1 ]]; then
  DEVICE=cpu; SIZE=32; BATCH=2; WIDTH=4; DEPTH=2; WORKERS=2; STEPS=3; WARMUP=1; REPEATS=1; PRECISION=32
  COMPILE=(); LOSS_SHAPE=(--shape 2 2 32 32); TRAINER=(trainer=cpu); GPUS=0
  TINY=(dataset.image_size=32 dataset.num_train=4 dataset.num_val=2
        dataset.num_test=2 dataset.batch_size=2)
else
  DEVICE=cuda; SIZE=512; BATCH=16; WIDTH=64; DEPTH=4; WORKERS=8; STEPS=30; WARMUP=10; REPEATS=2
  PRECISION=bf16-mixed; COMPILE=(--compile); LOSS_SHAPE=(); TRAINER=(trainer=gpu)
  GPUS=$("$BIN/python" -c "import torch; print(torch.cuda.device_count())")
  TINY=(dataset.image_size=512 dataset.num_train=32 dataset.num_val=4 dataset.num_test=4 dataset.batch_size=16)
  nvidia-smi -L
fi
"$BIN/python" -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else '')"

echo "## 1. loss fwd+bwd vs torch CE ($DEVICE)"
"$BIN/ece-bench" loss --device "$DEVICE" "${LOSS_SHAPE[@]}" --repeats 20

train_bench() {
  "$BIN/ece-bench" train --device "$DEVICE" --size "$SIZE" --batch-size "$BATCH" --width "$WIDTH" --depth "$DEPTH" \
    --precision "$PRECISION" --channels-last --workers "$WORKERS" --augment paper --steps "$STEPS" \
    --warmup "$WARMUP" --repeats "$REPEATS" "$@"
}
echo "## 2a. training step, compiled"
train_bench "${COMPILE[@]}"
echo "## 2b. training step, not compiled"
train_bench

echo "## 3. profile of ece-train steps (Lightning's simple profiler)"
"$BIN/ece-train" "${TRAINER[@]}" "${TINY[@]}" trainer.max_epochs=2 model.base_channels="$WIDTH" \
  model.depth="$DEPTH" speed.channels_last=true dataset.num_workers="$WORKERS" logger=none \
  +trainer.profiler=simple hydra.run.dir="$OUT/profile" 2>&1 | grep -E "Action|run_training_batch|optimizer_step|training_step|backward|train_dataloader_next|validation_step|Total" | sed -n "1,20p"

if (( GPUS >= 2 )); then
  echo "## 4a. trainer=ddp on 2 GPUs"
  "$BIN/ece-train" trainer=ddp trainer.devices=2 "${TINY[@]}" trainer.max_epochs=3 logger=none \
    hydra.run.dir="$OUT/ddp" | tail -5
  echo "## 4b. two jobs through the GPU pool"
  "$BIN/ece-train" -m hydra/launcher=local_gpus gpu_pool=auto trainer=gpu "${TINY[@]}" trainer.max_epochs=3 \
    logger=none sparsity=0.3,1.0 hydra.sweep.dir="$OUT/pool" | tail -5
else
  echo "## 4. skipped: $GPUS GPU(s), the DDP and GPU-pool checks need 2"
fi

if [[ "${LONG:-0}" == 1 ]]; then
  echo "## 5. paper_segmentation on CPM-15, CE/ECE x 0.3/1.0, 300 epochs"
  time "$BIN/ece-train" -m experiment=paper_segmentation dataset=cpm15 loss=ce,ece sparsity=0.3,1.0 logger=csv \
    hydra.sweep.dir="$OUT/paper_cpm15"
  "$BIN/ece-report" "$OUT/paper_cpm15"
fi
