#!/usr/bin/env bash
# The fly backbone of the second-genome runs (other_genomes.sh, dmel_context.sh): the 100 kb block split of
# D. melanogaster chr4, and configs/quickstart.yaml pre-trained on its training blocks only (once; kept if present).
set -euo pipefail
cd "$(dirname "$0")/../.."
D=data/dmel_chr4.fa.gz; R=runs/tasks/segment_genes/dmel
python tasks/segment_genes/make_split.py $D $R/split --block-size 100000
[ -f $R/backbone/model.safetensors ] || genomenet fit --config configs/quickstart.yaml --data.fasta $D \
  --data.val_fraction 0 --data.val_intervals $R/split/val.bed --data.test_intervals $R/split/test.bed \
  --report.context_lengths "[]" --checkpoint.dirpath $R/pretrain/checkpoints --report.export_dir $R/backbone \
  --trainer.logger false --trainer.enable_progress_bar false
