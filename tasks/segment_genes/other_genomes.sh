#!/usr/bin/env bash
# Second and third genomes, on the 2-core CPU at 1,024-base windows (the CPU-sized config): D. melanogaster chr4 with
# its GFF (a backbone pre-trained here on the split's training blocks only) and human chr20 with the RefSeq gene and
# exon BED files as tracks (tasks/promoters_chr20's backbone, pre-trained outside the same 1 Mb block split).
# Usage: bash tasks/segment_genes/other_genomes.sh [dmel|chr20|all]   (default all)
set -euo pipefail
cd "$(dirname "$0")/../.."
WHICH=${1:-all}
STEPS=${STEPS:-150}
common=(--trainer.max_steps $STEPS --trainer.val_check_interval 50 --model.head_warmup_steps 30
        --data.val_windows 32 --data.test_windows null --report.segment_max_bases 1000000)

# D. melanogaster chr4 (1.35 Mb): 100 kb blocks
if [ "$WHICH" != chr20 ]; then
D=data/dmel_chr4.fa.gz; R=runs/tasks/segment_genes/dmel
bash tasks/segment_genes/dmel_backbone.sh
genomenet fit --config configs/segment_genes.yaml --data.fasta $D --data.annotation ../shared/data/annotations/dm6_chr4.gff.gz \
  --model.init_weights $R/backbone --data.split.block_size 100000 "${common[@]}" \
  --checkpoint.dirpath $R/seg/checkpoints --report.export_dir $R/seg/model --trainer.logger false \
  --trainer.enable_progress_bar false
cp $R/seg/held_out_report.json tasks/segment_genes/results/dmel_chr4_1024.json
fi

# human chr20 (63 Mb): 1 Mb blocks, gene and exon tracks; 256 sampled test windows (every window of the 12 Mb test
# blocks, for the model and each baseline, outlasts a session on 2 cores)
[ "$WHICH" = dmel ] && exit 0
H=../shared/data/genomes/grch37_chr20.fa.gz; R=runs/tasks/segment_genes/chr20
python tasks/promoters_chr20/make_regions.py
[ -f runs/tasks/chr20/backbone/model.safetensors ] || genomenet fit --config tasks/promoters_chr20/pretrain.yaml \
  --trainer.logger false --trainer.enable_progress_bar false
genomenet fit --config configs/segment_genes.yaml --data.fasta $H \
  --data.tracks "{gene: ../shared/data/annotations/hg19_refseqgene.bed.gz, exon: ../shared/data/annotations/hg19_refseqexon.bed.gz}" \
  --model.init_weights runs/tasks/chr20/backbone --data.split.block_size 1000000 "${common[@]}" --data.test_windows 256 \
  --checkpoint.dirpath $R/seg/checkpoints --report.export_dir $R/seg/model --trainer.logger false \
  --trainer.enable_progress_bar false
cp $R/seg/held_out_report.json tasks/segment_genes/results/chr20_1024.json
