#!/usr/bin/env bash
# Set everything up in .venv (CPU build of torch first, so no CUDA build is pulled) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3.11 -m venv .venv
. .venv/bin/activate
python -m pip install -q torch==2.13.0
python -m pip install -q -e '.[test]'
python -m pytest -q "$@"
