#!/usr/bin/env bash
# Fill .gpu/ (git-ignored through .git/info/exclude) with what gpu.sh needs on a device machine that sees only the
# repository: the task's genome.fa, regions and split made here; and wheels of the packages the device image lacks
# into .whl/ (tasks/chr20_backbone/bundle.sh fetches the same wheels).
set -euo pipefail
cd "$(dirname "$0")/../.."
python tasks/drosophila_species/make_regions.py >/dev/null
for path in /.gpu/ /.whl/; do grep -qx "$path" .git/info/exclude 2>/dev/null || echo "$path" >> .git/info/exclude; done
rm -rf .gpu && mkdir -p .gpu/runs/tasks/drosophila_species
cp runs/tasks/drosophila_species/{genome.fa,genome.fa.fai,regions.bed,split_blocks.bed,val.bed,test.bed} \
  .gpu/runs/tasks/drosophila_species/
mkdir -p .whl
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl jsonargparse==4.53.0 pyfaidx==0.9.2.2 pysam==0.24.1 biopython==1.88 \
  docstring_parser==0.18.0 typeshed_client==2.15.0 importlib_resources==7.1.0
du -sh .gpu .whl
