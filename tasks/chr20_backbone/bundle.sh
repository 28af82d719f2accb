#!/usr/bin/env bash
# Fill .gpu/ (git-ignored through .git/info/exclude) with what gpu.sh needs on a device machine that sees only the
# repository: the chr20 FASTA and the 1000 Genomes file (as .gpu/shared/data/...), the task files made here, and the
# quickstart model; and wheels of the packages the device image lacks into .whl/ (README.md beside this).
set -euo pipefail
cd "$(dirname "$0")/../.."
python tasks/promoters_chr20/make_regions.py >/dev/null
python tasks/variants_1kg_chr20/make_labels.py >/dev/null
python tasks/chr20_backbone/make_split.py
rm -rf .gpu && mkdir -p .gpu/shared/data/genomes .gpu/shared/data/variants .gpu/runs/tasks .gpu/runs/quickstart
cp ../shared/data/genomes/grch37_chr20.fa.gz .gpu/shared/data/genomes/
cp ../shared/data/variants/1kg_phase3_chr20_1-4Mb.vcf.gz* .gpu/shared/data/variants/
cp -r runs/tasks/chr20_backbone .gpu/runs/tasks/
mkdir -p .gpu/runs/tasks/promoters_chr20 .gpu/runs/tasks/variants_1kg_chr20
cp runs/tasks/promoters_chr20/*.bed .gpu/runs/tasks/promoters_chr20/
cp runs/tasks/variants_1kg_chr20/{subset.vcf.gz,subset.vcf.gz.tbi,labels.tsv,heldout.bed} .gpu/runs/tasks/variants_1kg_chr20/
cp -r runs/quickstart/model .gpu/runs/quickstart/
. scripts/device.sh
device_wheels
du -sh .gpu .whl
