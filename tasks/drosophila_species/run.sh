#!/usr/bin/env bash
# Build genome.fa and the regions, pre-train the backbone outside the val/test blocks (once), then fine-tune at 1K,
# 8K and 32K windows on the same regions (data.split_context = 32,768: every length trains and tests on the centres
# whose 32K window lies in one split). Longer windows cost more per example: on 2 CPU cores the 8K run sees 1,200
# training windows (3 epochs of 400) and the 32K run 300 (3 of 100); the test split is scored whole at every length.
set -euo pipefail
cd "$(dirname "$0")/../.."
python tasks/drosophila_species/make_regions.py
[ -f runs/tasks/drosophila/backbone/model.safetensors ] || genomenet fit --config tasks/drosophila_species/pretrain.yaml
for length in ${LENGTHS:-1024 8192 32768}; do
  case $length in
    1024) extra=(--data.batch_size 16) ;;
    8192) extra=(--data.batch_size 4 --trainer.accumulate_grad_batches 4 --trainer.limit_train_batches 100
                 --trainer.max_epochs 3) ;;
    32768) extra=(--data.batch_size 1 --trainer.accumulate_grad_batches 16 --trainer.limit_train_batches 100
                  --trainer.max_epochs 3) ;;
  esac
  genomenet fit --config tasks/drosophila_species/finetune.yaml --data.context_length $length \
    --data.split_context 32768 "${extra[@]}" --checkpoint.dirpath runs/tasks/drosophila_species/finetune_$length/checkpoints \
    --report.export_dir runs/tasks/drosophila_species/finetune_$length/model "$@" \
    | tee runs/tasks/drosophila_species/finetune_$length.log
done
