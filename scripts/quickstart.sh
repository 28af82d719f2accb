#!/usr/bin/env bash
# Set everything up in .venv and run the main job on the shipped data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
genomenet fit --config configs/quickstart.yaml
