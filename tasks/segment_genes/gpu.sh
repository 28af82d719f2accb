#!/usr/bin/env bash
# One device call for the context study (README.md beside this; run.sh is the same study, one length after another):
# the TAIR10 chr1 backbone fine-tuned at 1K, 4K and 16K bases of input at once on one GPU, each for at most STEPS
# steps of 32,768 bases or MAX_TIME of training (the same for every length), then its report with both baselines
# (trained for the steps the model took) on the same held-out bases. Run bundle.sh here first; the call carries .gpu
# and .whl:
#   DEADLINE_S=540 STEPS=400 MAX_TIME=00:00:02:30 bash tasks/segment_genes/gpu.sh
# A CPU smoke run: ACCEL=cpu STEPS=2 TEST_WINDOWS=8 LENGTHS="1024 4096" bash tasks/segment_genes/gpu.sh
set -u
cd "$(dirname "$0")/../.."
. scripts/device.sh
DEADLINE_S=${DEADLINE_S:-540}
STEPS=${STEPS:-400}
device_start

I=runs/tasks/segment_genes/inputs
G=$I/tair10_chr1.fna.gz
A=$I/tair10_chr1.gff.gz
B=runs/tasks/tair10_chr1/backbone
R=runs/tasks/segment_genes/gpu
step 60 python3 tasks/segment_genes/make_split.py $G runs/tasks/segment_genes/split --block-size 1000000

fit_length() {  # one length: fine-tune, report, copy the report under $OUT
  local L=$1 BS=$((32768 / $1))
  say "fine-tuning at $L"
  timeout "$(left $((DEADLINE_S - 20)))" "${GN[@]}" fit --config configs/segment_genes.yaml --data.fasta $G --data.annotation $A \
    --model.init_weights $B --data.split.block_size 1000000 --data.context_length $L --data.batch_size $BS \
    --model.backbone.segment_lengths "[256,1024,2048,16384]" --model.backbone.dilation_rates "[1,2,4,32]" \
    --trainer.accelerator ${ACCEL:-gpu} --trainer.max_steps $STEPS --trainer.max_time ${MAX_TIME:-00:00:02:30} \
    --trainer.val_check_interval $(( $STEPS < 50 ? $STEPS : 50 )) --trainer.enable_progress_bar false \
    --trainer.logger false --model.head_warmup_steps $(( $STEPS < 100 ? 1 : 20 )) --data.val_windows 16 \
    --data.test_windows ${TEST_WINDOWS:-null} --report.segment_max_bases ${MAX_BASES:-2000000} \
    --checkpoint.dirpath $R/ctx$L/checkpoints --report.export_dir $R/ctx$L/model 2>&1 | grep -av "it/s]\|s/it]" > "$OUT/fit_$L.txt"
  say "$L: exit ${PIPESTATUS[0]}"
  cp $R/ctx$L/held_out_report.json "$OUT/context_$L.json" 2>/dev/null
}
for length in ${LENGTHS:-1024 4096 16384}; do
  fit_length "$length" &
done
wait
grep -a "held-out MCC\|^| mean" "$OUT"/fit_*.txt | tee -a "$LOG"
say "done"
