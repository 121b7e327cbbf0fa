#!/usr/bin/env bash
# Create .venv and install the pinned requirements, once (re-run when they change).
# Usage: scripts/setup.sh [requirements-file]   (default: requirements-dev.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
req="${1:-requirements-dev.txt}"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($py --version)"
  "$py" -m venv .venv
fi
stamp=".venv/.installed-$(cat requirements.txt "$req" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing $req into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$req"
  rm -f .venv/.installed-* && touch "$stamp"
fi
# locust -f locustfile.py --help lists the suite's options (users/locust_help.py says why this way)
site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
hook="$(pwd)/users/locust_help.py"
printf '%s\n' "import sys; (sys.argv[0].endswith('locust') and ('-h' in sys.argv or '--help' in sys.argv)) and __import__('runpy').run_path('$hook')" > "$site/vllm_locust_help.pth"
