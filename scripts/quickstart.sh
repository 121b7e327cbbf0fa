#!/usr/bin/env bash
# The main job end to end on the embedded emulator: the seed scenario, scaled down.
# Starts the emulator, runs a headless locust, writes CSVs under results/, prints where.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt >&2
out="${RESULTS:-results}/quickstart-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The emulator stands in for the seed's server: its defaults give ~25 tok/s per stream at 128 streams.
.venv/bin/python -m emulator --port "$port" --request-log "$out/emulator_requests.jsonl" > "$out/emulator.log" 2>&1 &
emu=$!
trap 'kill $emu 2>/dev/null || true' EXIT
.venv/bin/python - "$port" <<'PY'
import sys, time, urllib.request
for _ in range(200):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1)
        break
    except OSError:
        time.sleep(0.05)
else:
    sys.exit("error: the emulator did not start; see its log")
PY
# Seed: -u 128 -r 16 -n 500, ~2048 input tokens (here 1536 of them shared, in 4 prefix groups), 512 max
# output. Scaled: fewer requests, shorter outputs.
.venv/bin/locust -f locustfile.py --headless -u 128 -r 16 -n "${REQUESTS:-300}" -H "http://127.0.0.1:$port" \
  --input-tokens 2048 --prefix-tokens 1536 --prefix-groups 4 --max-tokens "${MAX_TOKENS:-256}" \
  --metrics-interval 2 --csv "$out/run" --csv-full-history --only-summary
.venv/bin/python -m reports "$out/run"
echo
echo "Results: $out/"
ls -1 "$out"
echo "Open $out/run_report.html for the charts and the summary."
