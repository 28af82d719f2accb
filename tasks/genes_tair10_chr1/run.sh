#!/usr/bin/env bash
# Build the task's regions, pre-train its backbone on sequence outside the task's val/test blocks (once), fine-tune.
set -euo pipefail
cd "$(dirname "$0")/../.."
python tasks/genes_tair10_chr1/make_regions.py
[ -f runs/tasks/tair10_chr1_k4/backbone/model.safetensors ] || genomenet fit --config tasks/genes_tair10_chr1/pretrain_k4.yaml
genomenet fit --config tasks/genes_tair10_chr1/finetune.yaml "$@"
