#!/usr/bin/env bash
# Short windows first, then the long ones: the context study with the same training bases at every length, where only
# the last phase's input length differs. Phase 1 fine-tunes the backbone at 1K (STEPS1 steps, one schedule of
# STEPS1 + STEPS2 steps: `model.optimizer.decay_steps`); phase 2 resumes that run (`--ckpt_path`: weights, optimizer,
# schedule) for STEPS2 more steps at each of LENGTHS, BASES bases a step, and reports on the same test bases.
# SegmentNT's 30 kb model was trained the same way: on 3 kb, 10 kb, 20 kb and finally 30 kb sequences (its model card,
# huggingface.co/InstaDeepAI/segment_nt).
# Usage: bash tasks/segment_genes/curriculum.sh [genomenet fit flags]   (BACKBONE, SEGMENTS, DILATIONS, RUN as in
# run.sh; PHASE=1 or PHASE=2 runs one phase; the phase-2 runs go side by side, each logging to its folder's .log)
set -euo pipefail
cd "$(dirname "$0")/../.."
G=../shared/data/genomes/tair10_chr1.fna.gz
A=../shared/data/annotations/tair10_chr1.gff.gz
B=${BACKBONE:-runs/tasks/tair10_chr1_k4/backbone}
SEGMENTS=${SEGMENTS:-[256,512,1024,4096]}
DILATIONS=${DILATIONS:-[1,2,4,16]}
STEPS1=${STEPS1:-300}
STEPS2=${STEPS2:-100}
BASES=${BASES:-65536}
VAL_BASES=${VAL_BASES:-262144}
RUN=${RUN:-curriculum}
P1=runs/tasks/segment_genes/$RUN-phase1
python tasks/segment_genes/make_split.py $G runs/tasks/segment_genes/split --block-size 1000000
fit() {   # fit LENGTH STEPS DIR [flags]
  local L=$1 S=$2 R=$3; shift 3
  local VW=$(( VAL_BASES / L )); [ $VW -gt 0 ] || VW=1
  genomenet fit --config configs/segment_genes.yaml --data.fasta $G --data.annotation $A --model.init_weights $B \
    --data.split.block_size 1000000 --data.context_length $L --data.batch_size $((BASES / L)) \
    --model.backbone.segment_lengths "$SEGMENTS" --model.backbone.dilation_rates "$DILATIONS" \
    --trainer.accelerator "${ACCELERATOR:-auto}" --trainer.max_steps $S --trainer.val_check_interval 50 \
    --model.optimizer.decay_steps $((STEPS1 + STEPS2)) --trainer.max_time 00:03:00:00 \
    --model.head_warmup_steps 20 --data.val_windows $VW --data.test_windows null \
    --report.segment_max_bases 2000000 --report.segment_baselines "[]" --checkpoint.dirpath $R/checkpoints \
    --report.export_dir $R/model "$@"
}
if [ "${PHASE:-1}" = 1 ]; then
  fit 1024 $STEPS1 $P1 --report.enabled false "$@"   # phase 1 is reported by the 1K arm of phase 2
  [ -n "${PHASE:-}" ] && exit 0
fi
pids=()
for L in ${LENGTHS:-1024 16384}; do
  R=runs/tasks/segment_genes/$RUN-then$L
  rm -f $R/held_out_report.json   # a failed arm must not leave an earlier run's report to be copied
  # another data.seed: phase 2 draws fresh windows (the resumed sampler would replay phase 1's), at every length
  fit $L $((STEPS1 + STEPS2)) $R --ckpt_path $P1/checkpoints/last.ckpt --data.seed 100 \
    "$@" > $R.log 2>&1 &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait $p || status=1; done
for L in ${LENGTHS:-1024 16384}; do
  R=runs/tasks/segment_genes/$RUN-then$L
  [ -f $R/held_out_report.json ] && cp $R/held_out_report.json tasks/segment_genes/results/${RUN}_1024_then_$L.json
  tail -n 2 $R.log
done
exit $status
