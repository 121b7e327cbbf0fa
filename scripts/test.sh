#!/usr/bin/env bash
# Every test: lint, unit, in-process and end-to-end (real locust and emulator processes).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements-dev.txt
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
