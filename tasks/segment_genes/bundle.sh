#!/usr/bin/env bash
# Add to .gpu/ (git-ignored) what gpu.sh needs on a device machine that sees only the repository: TAIR10 chr1 and
# its GFF, and tasks/genes_tair10_chr1's backbone (pre-trained outside this study's held-out blocks); wheels into
# .whl/. Additive: run tasks/drosophila_species/bundle.sh first when one call is to carry both (about 57 MB in all).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=runs/tasks/tair10_chr1/backbone
[ -f $B/model.safetensors ] || { echo "no backbone at $B: run genomenet fit --config tasks/genes_tair10_chr1/pretrain.yaml"; exit 1; }
mkdir -p .gpu/runs/tasks/segment_genes/inputs .gpu/runs/tasks/tair10_chr1
cp ../shared/data/genomes/tair10_chr1.fna.gz ../shared/data/annotations/tair10_chr1.gff.gz .gpu/runs/tasks/segment_genes/inputs/
rm -rf .gpu/$B && cp -r $B .gpu/$B
. scripts/device.sh
device_wheels
du -sh .gpu .whl
