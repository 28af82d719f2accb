#!/usr/bin/env bash
# Fill .gpu/ (git-ignored through .git/info/exclude) with what gpu.sh needs on a device machine that sees only the
# repository: the task's genome.fa, regions and split made here; and wheels of the packages the device image lacks
# into .whl/ (tasks/chr20_backbone/bundle.sh fetches the same wheels).
set -euo pipefail
cd "$(dirname "$0")/../.."
python tasks/drosophila_species/make_regions.py >/dev/null
rm -rf .gpu && mkdir -p .gpu/runs/tasks/drosophila_species
cp runs/tasks/drosophila_species/{genome.fa,genome.fa.fai,regions.bed,split_blocks.bed,val.bed,test.bed} \
  .gpu/runs/tasks/drosophila_species/
. scripts/device.sh
device_wheels
du -sh .gpu .whl
