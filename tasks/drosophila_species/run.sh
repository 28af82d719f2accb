#!/usr/bin/env bash
# Build genome.fa and the regions, pre-train the backbone outside the val/test blocks (once), then fine-tune at 1K,
# 8K and 32K windows on the same regions (data.split_context = 32,768: every length trains and tests on the centres
# whose 32K window lies in one split). K=4 (the default) is the 4-mer recipe (pretrain_k4.yaml: 32K bases = 8,192
# tokens, full epochs at every length); K=1 the first recipe (pretrain.yaml, 1-mer tokens; on 2 CPU cores the
# 8K run then sees 1,200 training windows and the 32K run 300).
# The backbone trains at 0.05x the head's rate (finetune.yaml) and at 0.01x at 32K, two epochs there (README, session
# 24); the first recipe's figures were measured at 0.25x.
#   LENGTHS="1024 32768" K=4 bash tasks/drosophila_species/run.sh [extra genomenet fit arguments]
set -euo pipefail
cd "$(dirname "$0")/../.."
K=${K:-4}
case $K in 1|4) ;; *) echo "run.sh: K takes 4 (the 4-mer recipe) or 1 (the first recipe), got $K" >&2; exit 2 ;; esac
python tasks/drosophila_species/make_regions.py
if [ "$K" = 4 ]; then
  backbone=runs/tasks/drosophila_k4/backbone
  [ -f $backbone/model.safetensors ] || genomenet fit --config tasks/drosophila_species/pretrain_k4.yaml
  recipe=(--model.init_args.init_weights $backbone --data.init_args.kmer_size 4)
  run=runs/tasks/drosophila_species/k4_finetune
else
  [ -f runs/tasks/drosophila/backbone/model.safetensors ] || genomenet fit --config tasks/drosophila_species/pretrain.yaml
  recipe=()
  run=runs/tasks/drosophila_species/finetune
fi
for length in ${LENGTHS:-1024 8192 32768}; do
  case $K:$length in
    *:1024) extra=(--data.batch_size 16) ;;
    4:8192) extra=(--data.batch_size 4 --trainer.accumulate_grad_batches 4 --trainer.max_epochs 3) ;;
    4:32768) extra=(--data.batch_size 2 --trainer.accumulate_grad_batches 8 --trainer.max_epochs 2
                    --model.init_args.backbone_lr_scale 0.01 --trainer.max_time 00:00:45:00) ;;
    *:8192) extra=(--data.batch_size 4 --trainer.accumulate_grad_batches 4 --trainer.limit_train_batches 100
                   --trainer.max_epochs 3) ;;
    *:32768) extra=(--data.batch_size 1 --trainer.accumulate_grad_batches 16 --trainer.limit_train_batches 100
                    --trainer.max_epochs 3) ;;
    *) echo "run.sh: LENGTHS takes 1024, 8192 and 32768 (got $length)" >&2; exit 2 ;;
  esac
  genomenet fit --config tasks/drosophila_species/finetune.yaml "${recipe[@]}" --data.context_length $length \
    --data.split_context 32768 "${extra[@]}" --checkpoint.dirpath ${run}_$length/checkpoints \
    --report.export_dir ${run}_$length/model "$@" | tee ${run}_$length.log
done
