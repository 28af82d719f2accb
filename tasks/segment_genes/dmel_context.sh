#!/usr/bin/env bash
# The context study on the second genome, on the 2-core CPU: D. melanogaster chr4 with its GFF, the fly backbone of
# dmel_backbone.sh (pre-trained on the 100 kb block split's training blocks only) fine-tuned at 1K, 4K and 16K bases
# of input, each beside the same architecture from scratch and a dilated CNN; equal bases per step (16,384), equal
# validation bases, the same held-out bases (every test base once) at every length.
# Usage: bash tasks/segment_genes/dmel_context.sh [genomenet fit flags]   (STEPS, LENGTHS, SEED change the study;
# RUN names a variant's folders and reports, default seed$SEED; extra flags go to every fit)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${STEPS:-150}
SEED=${SEED:-0}
RUN=${RUN:-seed$SEED}
D=data/dmel_chr4.fa.gz; R=runs/tasks/segment_genes/dmel
bash tasks/segment_genes/dmel_backbone.sh
for L in ${LENGTHS:-1024 4096 16384}; do
  O=$R/ctx$L-$RUN
  genomenet fit --config configs/segment_genes.yaml --data.fasta $D --data.annotation ../shared/data/annotations/dm6_chr4.gff.gz \
    --model.init_weights $R/backbone --data.split.block_size 100000 --data.context_length $L \
    --data.batch_size $((16384 / L)) --data.val_windows $((262144 / L)) --data.test_windows null \
    --model.backbone.segment_lengths "[256,1024,2048,16384]" --model.backbone.dilation_rates "[1,2,4,32]" \
    --seed_everything $SEED --data.seed $SEED --trainer.max_steps $STEPS --trainer.max_time 00:00:20:00 \
    --trainer.val_check_interval 50 --model.head_warmup_steps 30 --report.segment_max_bases 1000000 \
    --checkpoint.dirpath $O/checkpoints --report.export_dir $O/model --trainer.logger false \
    --trainer.enable_progress_bar false "$@"
  cp $O/held_out_report.json tasks/segment_genes/results/dmel_context_${L}_$RUN.json
done
python tasks/segment_genes/plot_context.py --prefix dmel_context --title "D. melanogaster chr4 held-out blocks"
