#!/usr/bin/env bash
# One device call for the context study (README.md beside this; run.sh is the same study, one length after another):
# the TAIR10 chr1 backbone fine-tuned at every length of LENGTHS at once on one GPU, each for at most STEPS steps of
# BASES bases or MAX_TIME of training (the same for every length), then its report (with BASELINES trained for the
# steps the model took) on the same held-out bases, then eval_lengths.py: the models of EVAL_MODELS read at every
# length of LENGTHS. Run bundle.sh here first; the call carries .gpu and .whl:
#   DEADLINE_S=560 bash tasks/segment_genes/gpu.sh
# PRETRAIN_STEPS=N first pre-trains a fresh backbone on the GPU (tasks/genes_tair10_chr1/pretrain.yaml on the
# training blocks of this study's split, PRETRAIN_LENGTH-base windows, at most PRETRAIN_TIME) and fine-tunes that.
# BACKBONE picks another bundled backbone, e.g. the 4-mer one (README, "The 4-mer backbone on a CPU"), with
# SEGMENTS/DILATIONS in its tokens and --data.kmer_size 4 among the extra flags.
# A CPU smoke run: ACCEL=cpu STEPS=2 MAX_TIME=00:00:01:00 TEST_WINDOWS=8 LENGTHS="1024 4096" EVAL_MODELS=4096 \
#   EVAL_STRIDE=64 bash tasks/segment_genes/gpu.sh
# Under $OUT (at most 8 files come back): log.txt, fits.txt (each fit's output, tail), context_L.json per length,
# eval_lengths.json.
set -u
cd "$(dirname "$0")/../.."
. scripts/device.sh
DEADLINE_S=${DEADLINE_S:-560}
STEPS=${STEPS:-250}
BASES=${BASES:-65536}
HEAD=${HEAD:-unet}
BASELINES=${BASELINES:-[]}
LENGTHS=${LENGTHS:-1024 4096 16384 65536}
# branches: the backbone's own (256/1, 1024/2, 2048/4, pre-trained at 2,048 bases) and longer ones reaching 64K; the
# same at every length (the weights do not depend on them)
SEGMENTS=${SEGMENTS:-[256,1024,2048,16384,65536]}
DILATIONS=${DILATIONS:-[1,2,4,32,128]}
SEED=${SEED:-0}
RUN=${RUN:-}   # a tag for this run's folders and files under $OUT (two runs may share a call)
FIT_ARGS=("$@")   # extra genomenet fit flags, for every length
device_start

I=runs/tasks/segment_genes/inputs
G=$I/tair10_chr1.fna.gz
A=$I/tair10_chr1.gff.gz
B=${BACKBONE:-runs/tasks/tair10_chr1/backbone}   # bundled by bundle.sh with the same BACKBONE
R=runs/tasks/segment_genes/gpu${RUN:+_$RUN}
mkdir -p $R
step 60 python3 tasks/segment_genes/make_split.py $G runs/tasks/segment_genes/split --block-size 1000000
if [ -n "${PRETRAIN_STEPS:-}" ]; then
  B=$R/backbone
  step $((DEADLINE_S - 200)) "${GN[@]}" fit --config tasks/genes_tair10_chr1/pretrain.yaml --data.fasta $G \
    --data.val_intervals runs/tasks/segment_genes/split/val.bed --data.test_intervals runs/tasks/segment_genes/split/test.bed \
    --data.context_length ${PRETRAIN_LENGTH:-16384} --model.backbone.segment_lengths "$SEGMENTS" \
    --model.backbone.dilation_rates "$DILATIONS" --trainer.accelerator ${ACCEL:-gpu} --trainer.max_steps $PRETRAIN_STEPS \
    --trainer.max_time ${PRETRAIN_TIME:-00:00:03:00} --trainer.val_check_interval $(( PRETRAIN_STEPS < 200 ? PRETRAIN_STEPS : 200 )) \
    --trainer.logger false --trainer.enable_progress_bar false --checkpoint.dirpath $R/pretrain/checkpoints \
    --report.export_dir $B
  [ -f $B/model.safetensors ] || { say "no pre-trained backbone at $B"; exit 1; }
fi
say "backbone: $B"
say "settings: RUN=$RUN SEED=$SEED STEPS=$STEPS BASES=$BASES HEAD=$HEAD BASELINES=$BASELINES SEGMENTS=$SEGMENTS DILATIONS=$DILATIONS"

fit_length() {  # one length: fine-tune, report, copy the report under $OUT
  local L=$1 BS=$(( BASES / $1 > 0 ? BASES / $1 : 1 )) VW=$(( 262144 / $1 > 0 ? 262144 / $1 : 1 ))
  say "fine-tuning at $L: $BS windows a step, $VW validation windows"
  timeout "$(left $((DEADLINE_S - 90)))" "${GN[@]}" fit --config configs/segment_genes.yaml --data.fasta $G \
    --data.annotation $A --model.init_weights $B --model.head $HEAD --data.split.block_size 1000000 \
    --data.context_length $L --data.batch_size $BS --seed_everything $SEED --data.seed $SEED \
    --model.backbone.segment_lengths "$SEGMENTS" --model.backbone.dilation_rates "$DILATIONS" \
    --trainer.accelerator ${ACCEL:-gpu} --trainer.max_steps $STEPS --trainer.max_time ${MAX_TIME:-00:00:04:30} \
    --trainer.val_check_interval $(( STEPS < 50 ? STEPS : 50 )) --trainer.enable_progress_bar false \
    --trainer.logger false --model.head_warmup_steps $(( STEPS < 100 ? 1 : 20 )) --data.val_windows $VW \
    --data.test_windows ${TEST_WINDOWS:-null} --report.segment_max_bases ${MAX_BASES:-2000000} \
    --report.segment_baselines "$BASELINES" \
    --checkpoint.dirpath $R/ctx$L/checkpoints --report.export_dir $R/ctx$L/model "${FIT_ARGS[@]}" 2>&1 \
    | grep -av "it/s]\|s/it]" > "$R/fit_$L.txt"
  say "$L: exit ${PIPESTATUS[0]}"
  cp $R/ctx$L/held_out_report.json "$OUT/context_$L${RUN:+_$RUN}.json" 2>/dev/null
}
for length in $LENGTHS; do
  fit_length "$length" &
done
wait
for length in $LENGTHS; do echo "== fit at $length"; tail -n 120 "$R/fit_$length.txt"; done > "$OUT/fits${RUN:+_$RUN}.txt"
grep -a "held-out MCC\|^| mean" $R/fit_*.txt | tee -a "$LOG"

models=()
for length in ${EVAL_MODELS-16384 65536}; do
  [ -f $R/ctx$length/model/model.safetensors ] && models+=($R/ctx$length/model)
done
read -r -a lengths <<< "$LENGTHS"
[ ${#models[@]} -gt 0 ] && step $((DEADLINE_S - 5)) python3 tasks/segment_genes/eval_lengths.py $G $A "${models[@]}" \
  --block-size 1000000 --lengths "${lengths[@]}" --stride ${EVAL_STRIDE:-4} ${TEST_WINDOWS:+--max-windows $TEST_WINDOWS} \
  --json "$OUT/eval_lengths${RUN:+_$RUN}.json"
say "done"
