#!/usr/bin/env bash
# Every test: lint, unit, in-process and end-to-end (real locust and emulator processes).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements-dev.txt
# the web UI tests drive Debian's chromium with Playwright (Playwright's own browser download is not used)
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing chromium (apt-get)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "test: chromium is missing and cannot be installed here; the browser tests will be skipped" >&2
  fi
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet   # the docs: a warning fails the build
exec .venv/bin/python -m pytest "$@"
