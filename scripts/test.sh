#!/usr/bin/env bash
# Set everything up in .venv and run the whole test suite (slow tests included; add -m 'not slow' to skip them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m pytest -q "$@"
