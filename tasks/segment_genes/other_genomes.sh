#!/usr/bin/env bash
# Second and third genomes, on the 2-core CPU at 1,024-base windows (the CPU-sized config): D. melanogaster chr4 with
# its GFF (a backbone pre-trained here on the split's training blocks only) and human chr20 with the RefSeq gene and
# exon BED files as tracks (tasks/promoters_chr20's backbone, pre-trained outside the same 1 Mb block split).
# Usage: bash tasks/segment_genes/other_genomes.sh [dmel|chr20|all] [genomenet fit flags]   (default all)
# CHR20_BACKBONE picks human chr20's backbone (default the 1-mer one of promoters_chr20/pretrain.yaml) and RUN tags
# its folders and report, e.g. the 4-mer backbone with a U-Net head:
#   CHR20_BACKBONE=runs/tasks/chr20_k4/backbone RUN=k4-unet bash tasks/segment_genes/other_genomes.sh chr20 \
#     --data.kmer_size 4 --data.context_length 4096 --model.head unet
set -euo pipefail
cd "$(dirname "$0")/../.."
WHICH=${1:-all}
shift || true
EXTRA=("$@")
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
H=../shared/data/genomes/grch37_chr20.fa.gz; R=runs/tasks/segment_genes/chr20${RUN:+-$RUN}
B20=${CHR20_BACKBONE:-runs/tasks/chr20/backbone}
python tasks/promoters_chr20/make_regions.py
[ -f $B20/model.safetensors ] || [ "$B20" != runs/tasks/chr20/backbone ] || genomenet fit \
  --config tasks/promoters_chr20/pretrain.yaml --trainer.logger false --trainer.enable_progress_bar false
genomenet fit --config configs/segment_genes.yaml --data.fasta $H \
  --data.tracks "{gene: ../shared/data/annotations/hg19_refseqgene.bed.gz, exon: ../shared/data/annotations/hg19_refseqexon.bed.gz}" \
  --model.init_weights $B20 --data.split.block_size 1000000 "${common[@]}" --data.test_windows 256 \
  --checkpoint.dirpath $R/seg/checkpoints --report.export_dir $R/seg/model --trainer.logger false \
  --trainer.enable_progress_bar false "${EXTRA[@]}"
cp $R/seg/held_out_report.json tasks/segment_genes/results/chr20_${RUN:-1024}.json
