#!/usr/bin/env bash
# Add to .gpu/ (git-ignored) what gpu.sh needs on a device machine that sees only the repository: TAIR10 chr1 and
# its GFF, and tasks/genes_tair10_chr1's backbone (pre-trained outside this study's held-out blocks); wheels into
# .whl/. Additive: run tasks/drosophila_species/bundle.sh first when one call is to carry both (about 57 MB in all).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${BACKBONE:-runs/tasks/tair10_chr1/backbone}   # BACKBONE=runs/tasks/tair10_chr1_k4/backbone: the 4-mer one
[ -f $B/model.safetensors ] || { echo "no backbone at $B: run genomenet fit --config tasks/genes_tair10_chr1/pretrain.yaml"; exit 1; }
mkdir -p .gpu/runs/tasks/segment_genes/inputs .gpu/$(dirname $B)
cp ../shared/data/genomes/tair10_chr1.fna.gz ../shared/data/annotations/tair10_chr1.gff.gz .gpu/runs/tasks/segment_genes/inputs/
rm -rf .gpu/$B && cp -r $B .gpu/$B
. scripts/device.sh
device_wheels
du -sh .gpu .whl
