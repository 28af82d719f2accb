#!/usr/bin/env bash
# Label the variants, pre-train a chr20 backbone outside their span (once), score them zero-shot beside the Markov
# LLR, then the stratified table.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=runs/tasks/variants_1kg_chr20
python tasks/variants_1kg_chr20/make_labels.py
[ -f runs/tasks/chr20_variants/backbone/model.safetensors ] || genomenet fit --config tasks/variants_1kg_chr20/pretrain.yaml
genomenet score-variants --model runs/tasks/chr20_variants/backbone --fasta ../shared/data/genomes/grch37_chr20.fa.gz \
  --vcf $out/subset.vcf.gz --out $out/scores.vcf.gz --tsv $out/scores.tsv --labels $out/labels.tsv \
  --window 1024 --scores llr,cosine,l2 "$@"
python tasks/variants_1kg_chr20/evaluate.py $out/scores.tsv
