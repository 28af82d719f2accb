# Shared by the tasks' device calls (tasks/*/gpu.sh, tasks/*/bundle.sh); sourced, not run.
#   device_wheels        here: wheels of the packages the device image lacks into .whl/ (git-ignored)
#   device_start         there: $OUT, $LOG, say, step (each step capped by its limit and by $DEADLINE_S, and logged
#                        under $OUT at once), the wheels installed, .gpu/runs copied into runs/

device_wheels() {
  for path in /.gpu/ /.whl/; do grep -qx "$path" .git/info/exclude 2>/dev/null || echo "$path" >> .git/info/exclude; done
  mkdir -p .whl
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl jsonargparse==4.53.0 pyfaidx==0.9.2.2 pysam==0.24.1 biopython==1.88 \
    docstring_parser==0.18.0 typeshed_client==2.15.0 importlib_resources==7.1.0
}

device_start() {
  T0=$(date +%s)
  OUT=${OUT:-runs/gpu_out}
  mkdir -p "$OUT"
  LOG=$OUT/log.txt
  if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
  fi
  mkdir -p runs && cp -r .gpu/runs/. runs/
  export GENOMENET_CACHE=${GENOMENET_CACHE:-/tmp/genomenet_cache} PYTHONUNBUFFERED=1
  GN=(python3 -m genomenet.cli)
  nvidia-smi -L | tee -a "$LOG"; python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$LOG"
}

say() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$LOG"; }

# seconds left before $DEADLINE_S (unset: no deadline), at most $1 and at least 5
left() { local l=$(( ${DEADLINE_S:-1000000} - ($(date +%s) - T0) )); echo $(( l < $1 ? (l > 5 ? l : 5) : $1 )); }

step() {
  local limit; limit=$(left "$1"); shift; say "(limit ${limit} s) $*"
  timeout "$limit" "$@" 2>&1 | grep -av "it/s]\|s/it]" | tee -a "$LOG" | tail -n 60; say "exit ${PIPESTATUS[0]}"
}
