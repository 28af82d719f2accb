#!/usr/bin/env bash
# The context study on TAIR10 chr1: the same pre-trained backbone fine-tuned at 1K, 4K and 16K bases of input, each
# beside the same architecture from scratch and a dilated CNN, equal bases per step (BASES, default 32,768), same
# held-out bases.
# The backbone is tasks/genes_tair10_chr1's (pre-trained outside the val/test blocks of a 1 Mb block split, seed 0,
# which is the split used here): run that task's pre-training first. ACCELERATOR=gpu to run on a GPU.
# Usage: bash tasks/segment_genes/run.sh [genomenet fit flags]   (STEPS, BASES, LENGTHS change the study; RUN names a
# variant's folders and reports, e.g. RUN=unet with --model.head unet; extra flags go to every fit; BACKBONE,
# SEGMENTS and DILATIONS pick another backbone and its branches, e.g. the 4-mer one of pretrain_k4.yaml with
# --data.kmer_size 4; VAL_BASES gives every length the same validation bases)
set -euo pipefail
cd "$(dirname "$0")/../.."
G=../shared/data/genomes/tair10_chr1.fna.gz
A=../shared/data/annotations/tair10_chr1.gff.gz
B=${BACKBONE:-runs/tasks/tair10_chr1/backbone}
SEGMENTS=${SEGMENTS:-[256,1024,2048,16384]}
DILATIONS=${DILATIONS:-[1,2,4,32]}
STEPS=${STEPS:-100}
BASES=${BASES:-32768}
RUN=${RUN:-}
[ -f $B/model.safetensors ] || [ -n "${BACKBONE:-}" ] || genomenet fit --config tasks/genes_tair10_chr1/pretrain.yaml
python tasks/segment_genes/make_split.py $G runs/tasks/segment_genes/split --block-size 1000000
for L in ${LENGTHS:-1024 4096 16384}; do
  R=runs/tasks/segment_genes/ctx$L${RUN:+-$RUN}
  VW=$(( ${VAL_BASES:-$((16 * L))} / L )); [ $VW -gt 0 ] || VW=1
  genomenet fit --config configs/segment_genes.yaml --data.fasta $G --data.annotation $A --model.init_weights $B \
    --data.split.block_size 1000000 --data.context_length $L --data.batch_size $((BASES / L)) \
    --model.backbone.segment_lengths "$SEGMENTS" --model.backbone.dilation_rates "$DILATIONS" \
    --trainer.accelerator "${ACCELERATOR:-auto}" --trainer.max_steps $STEPS --trainer.val_check_interval 50 \
    --model.head_warmup_steps 20 --data.val_windows $VW --data.test_windows null \
    --report.segment_max_bases 2000000 --checkpoint.dirpath $R/checkpoints --report.export_dir $R/model "$@"
  cp $R/held_out_report.json tasks/segment_genes/results/context_$L${RUN:+_$RUN}.json
done
[ -n "$RUN" ] && exit 0
python tasks/segment_genes/plot_context.py
python tasks/segment_genes/cross_species.py runs/tasks/segment_genes/ctx4096/model data/dmel_chr4.fa.gz \
  ../shared/data/annotations/dm6_chr4.gff.gz
