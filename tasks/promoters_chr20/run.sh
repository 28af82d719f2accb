#!/usr/bin/env bash
# Build the task's regions, pre-train its backbone on sequence outside the task's val/test blocks (once), fine-tune.
set -euo pipefail
cd "$(dirname "$0")/../.."
python tasks/promoters_chr20/make_regions.py
[ -f runs/tasks/chr20_k4/backbone/model.safetensors ] || genomenet fit --config tasks/promoters_chr20/pretrain_k4.yaml
genomenet fit --config tasks/promoters_chr20/finetune.yaml "$@"
