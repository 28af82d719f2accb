#!/usr/bin/env bash
# One device call (README.md beside this): GPU self-check of the cached-rows path, pre-train the shared chr20 backbone in a
# fixed time budget, score the variants task zero-shot with it, variant-scoring throughput on the GPU, fine-tune
# promoters_chr20 from it. Each step is capped by `timeout` and leaves its results under $OUT at once, so a step that
# fails or runs out of time still returns the earlier ones. Run bundle.sh here first; the call carries .gpu and .whl.
#   TRAIN_S=200 bash tasks/chr20_backbone/gpu.sh
set -u
cd "$(dirname "$0")/../.."
. scripts/device.sh
[ -e ../shared ] || ln -s "$PWD/.gpu/shared" ../shared
device_start

step 90 python3 benchmarks/gpu_rows_check.py

STEPS=${STEPS:-}
[ -n "$STEPS" ] || STEPS=$(timeout 90 python3 tasks/chr20_backbone/steps_for.py tasks/chr20_backbone/pretrain_gpu.yaml \
        --seconds "${TRAIN_S:-200}" 2>>"$LOG") || STEPS=1200
[ -n "${SMOKE:-}" ] || STEPS=$(( STEPS < 200 ? 200 : STEPS > 6000 ? 6000 : STEPS ))
say "pre-training for $STEPS steps"
step "${FIT_LIMIT:-400}" "${GN[@]}" fit --config tasks/chr20_backbone/pretrain_gpu.yaml --trainer.max_steps "$STEPS" \
     ${FIT_ARGS:-}
B=runs/tasks/chr20_backbone/backbone
if [ -f $B/model.safetensors ]; then
  cp $B/config.json "$OUT/config.json"
  split -b 15m -d $B/model.safetensors "$OUT/model.safetensors.part"
  cp "$(ls -td runs/chr20_backbone_gpu/version_*/ | head -1)metrics.csv" "$OUT/metrics.csv"
fi

V=runs/tasks/variants_1kg_chr20
step 150 "${GN[@]}" score-variants --model $B --fasta ../shared/data/genomes/grch37_chr20.fa.gz --vcf $V/subset.vcf.gz \
     --out $V/scores_gpu.vcf.gz --tsv "$OUT/scores_gpu.tsv" --labels $V/labels.tsv --window 1024 \
     --scores llr,cosine,l2 --device ${DEVICE:-cuda}

step 90 python3 benchmarks/variants.py --model runs/quickstart/model --records ${RECORDS:-1000} --batch-sizes 8 64 --device ${DEVICE:-cuda} \
     --scores llr
step 60 python3 benchmarks/variants.py --model runs/quickstart/model --records ${RECORDS:-300} --spacing 2048 --batch-sizes 64 \
     --device ${DEVICE:-cuda} --scores llr

P=runs/tasks/promoters_chr20/gpu
step "${PROMOTERS_LIMIT:-150}" "${GN[@]}" fit --config tasks/promoters_chr20/finetune.yaml \
     --model.init_args.init_weights $B --data.init_args.kmer_size 1 --model.init_args.strands one \
     --checkpoint.dirpath $P/checkpoints --report.export_dir $P/model \
     --trainer.logger false --trainer.enable_progress_bar false ${PROMOTERS_ARGS:-}
say "done"
