#!/usr/bin/env bash
# One device call (README.md beside this): self-check of the GPU attention kernels, pre-train the task's backbone on
# the GPU in a fixed time budget (pretrain_gpu.yaml), then fine-tune from it at 32K, 1K and 8K windows on the task's
# regions and split, with the k-mer and frozen-probe baselines in each report. Each step is capped by `timeout` and by
# the call's deadline, and leaves its results under $OUT at once. Run bundle.sh here first; the call carries .gpu and
# .whl (a CPU smoke run: ACCEL=cpu STEPS=2 FIT_ARGS=... FT_ARGS=...):
#   DEADLINE_S=570 bash tasks/drosophila_species/gpu.sh
# A backbone carried in .gpu/runs/tasks/drosophila_gpu/backbone is fine-tuned as it is (no pre-training); T32=SS
# (two digits) gives the 32K fine-tune SS seconds more.
set -u
cd "$(dirname "$0")/../.."
. scripts/device.sh
DEADLINE_S=${DEADLINE_S:-570}
device_start

B=runs/tasks/drosophila_gpu/backbone
# a backbone carried in .gpu/ (a GPU backbone of an earlier call) is fine-tuned as it is: no self-check (the model's
# attention runs its own at start-up) and no pre-training, which leaves the call's time to the three fine-tunes
if [ -f $B/model.safetensors ]; then
  say "fine-tuning the carried backbone $B"
else
  step 40 python3 tasks/drosophila_species/gpu_selfcheck.py
  STEPS=${STEPS:-}
  [ -n "$STEPS" ] || STEPS=$(timeout 60 python3 tasks/chr20_backbone/steps_for.py tasks/drosophila_species/pretrain_gpu.yaml \
          --steps 10 --seconds "${TRAIN_S:-100}" 2>>"$LOG") || STEPS=600
  say "pre-training for $STEPS steps"
  step 200 "${GN[@]}" fit --config tasks/drosophila_species/pretrain_gpu.yaml --trainer.max_steps "$STEPS" ${FIT_ARGS:-}
  cp "$(ls -td runs/drosophila_pretrain_gpu/version_*/ | head -1)metrics.csv" "$OUT/pretrain_metrics.csv" 2>/dev/null
  # the backbone comes back at once (tar, in parts under the 16 MB per-file limit), so the shorter windows can be
  # fine-tuned from it on a CPU if the call runs out of time
  tar -cf /tmp/backbone.tar $B && split -b 15m -d /tmp/backbone.tar "$OUT/backbone.tar.part"
fi

F=runs/tasks/drosophila_species
# each limit leaves about two minutes after max_time for set-up, the head's starting probe and the report (k-mer and
# frozen-probe baselines); a first call that gave the 32K run 80 s of it lost the report
for length in ${LENGTHS:-32768 8192 1024}; do
  case $length in
    1024) extra=(--data.batch_size 16 --trainer.max_epochs 6 --trainer.max_time 00:00:00:40) limit=160 ;;
    8192) extra=(--data.batch_size 8 --trainer.max_epochs 4 --trainer.max_time 00:00:01:00) limit=180 ;;
    32768) extra=(--data.batch_size 4 --trainer.max_epochs 3 --trainer.max_time 00:00:02:${T32:-00}) limit=$((260 + 10#${T32:-0})) ;;
  esac
  step $limit "${GN[@]}" fit --config tasks/drosophila_species/finetune.yaml --data.context_length $length \
    --data.split_context 32768 "${extra[@]}" --trainer.accelerator ${ACCEL:-gpu} --trainer.precision bf16-mixed \
    --trainer.limit_val_batches 1.0 --trainer.enable_progress_bar false --trainer.logger false \
    --model.init_args.init_weights $B --model.init_args.head_init probe --model.init_args.head_init_windows 512 \
    --report.probe_max_bases 20000000 --checkpoint.dirpath $F/gpu_finetune_$length/checkpoints \
    --report.export_dir $F/gpu_finetune_$length/model ${FT_ARGS:-}
  grep -a "held-out\|^|\|LOSES\|beats\|fine-tuned minus" "$LOG" | tail -n 40 > "$OUT/report_$length.txt"
done
say "done"
