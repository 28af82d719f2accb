#!/usr/bin/env bash
# One device call: the longer text run of docs/text.md (2,000 steps at 2,048 bytes, Wikipedia sample) for LongNet,
# its fixed sparse baselines and LongNet's sliding-window variant, all trained at once on one GPU through
# benchmarks/lm.py (so through `genomenet fit --config configs/text_lm.yaml`). Here first:
#   mkdir -p .gpu/text && cp ../shared/data/text/enwiki_sample.xml.bz2 .gpu/text/ && (. scripts/device.sh; device_wheels)
# then one call carrying .gpu and .whl:
#   DEADLINE_S=570 bash benchmarks/lm_gpu.sh
# Each group's table, and every model's report and log, land under $OUT as they finish; a model the deadline cuts
# leaves its log. LM_GROUPS picks the groups (default all four: main sliding32 sparse1632 local32).
# A CPU smoke run: ACCEL=cpu STEPS=2 CONTEXT=256 SEEDS=0 LM_GROUPS="main sparse1632" bash benchmarks/lm_gpu.sh
set -u
cd "$(dirname "$0")/.."
. scripts/device.sh
DEADLINE_S=${DEADLINE_S:-570}
device_start

LM=runs/benchmarks/lm
mkdir -p $LM
# one unpacked copy (lm.py's own corpus_file) before the groups start, which would otherwise race to write it
python3 -c "import sys; from pathlib import Path; sys.path.insert(0, 'benchmarks'); from lm import corpus_file; \
corpus_file('wiki', Path('$LM'), Path('.gpu/text'))"
read -r -a seeds <<< "${SEEDS:-0 1}"
common=(--accelerator "${ACCEL:-gpu}" --context "${CONTEXT:-2048}" --steps "${STEPS:-2000}" --text-dir .gpu/text
        --seeds "${seeds[@]}" --out $LM)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

group() {   # group NAME LM_ARGS...: one benchmarks/lm.py run, every model of it at once
  local name=$1; shift
  say "start $name: $*"
  timeout "$(left 900)" python3 benchmarks/lm.py "${common[@]}" --jobs 8 "$@" > "$OUT/table_$name.txt" 2>&1
  say "end $name: exit $?"
}
for name in ${LM_GROUPS:-main sliding32 sparse1632 local32}; do
  case $name in
    main) group main --attention dilated strided & ;;
    sliding32) group sliding32 --attention sliding --set sliding_window=32 & ;;
    # the sparser long branches that led at the CPU budget (docs/text.md, "fewer far keys")
    sparse1632) group sparse1632 --attention sliding --set sliding_window=32 --set 'dilation_rates=[16,32]' & ;;
    local32) group local32 --attention local --set local_window=32 & ;;
    *) say "unknown group $name" ;;
  esac
done
wait

# flat names: the device call returns files at most a few folders deep
for run in $LM/*/*/; do
  name=$(basename "$(dirname "$run")")_$(basename "$run")
  cp "$run/held_out_report.json" "$OUT/$name.json" 2>/dev/null
  tail -c 20000 "$run/log.txt" > "$OUT/$name.log" 2>/dev/null
done
say "done"
