#!/usr/bin/env bash
# Create .venv with the CPU build of torch first (a bare `torch` would pull a multi-GB CUDA build), then genomenet.
# On a GPU machine, install the CUDA torch you want first and run `pip install -e '.[test,gpu]'` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] || python3.11 -m venv .venv
. .venv/bin/activate
python -m pip install -q torch==2.13.0
python -m pip install -q -e '.[test]'
