#!/usr/bin/env bash
# Build the task's regions, pre-train its backbone on sequence outside the task's val/test blocks (once), fine-tune.
set -euo pipefail
cd "$(dirname "$0")/../.."
python tasks/splice_chr20/make_regions.py
python tasks/promoters_chr20/make_regions.py   # the chr20 backbone's held-out blocks
[ -f runs/tasks/chr20/backbone/model.safetensors ] || genomenet fit --config tasks/promoters_chr20/pretrain.yaml
genomenet fit --config tasks/splice_chr20/finetune.yaml "$@"
