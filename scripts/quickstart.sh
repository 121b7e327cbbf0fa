#!/usr/bin/env bash
# The main job end to end on the embedded emulator: the seed scenario, scaled down.
# Starts the emulator, runs a headless locust, writes CSVs under results/, prints where.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt >&2
out="${RESULTS:-results}/quickstart-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
# The emulator stands in for the seed's server: its defaults give ~25 tok/s per stream at 128 streams.
# It binds a free port itself (--port 0) and says which: no port is found and released first (a race).
.venv/bin/python -m emulator --port 0 --request-log "$out/emulator_requests.jsonl" > "$out/emulator.log" 2>&1 &
emu=$!
trap 'kill $emu 2>/dev/null || true' EXIT
url=$(.venv/bin/python - "$out/emulator.log" <<'PY'
import sys, time, urllib.request
for _ in range(400):
    with open(sys.argv[1]) as f:
        ready = [line.split()[3] for line in f if line.startswith("emulator ready on ")]
    if ready:
        try:
            urllib.request.urlopen(ready[0] + "/health", timeout=1)
            print(ready[0])
            break
        except OSError:
            pass
    time.sleep(0.05)
else:
    sys.exit("error: the emulator did not start; see its log")
PY
)
# Seed: -u 128 -r 16 -n 500, ~2048 input tokens (here 1536 of them shared, in 4 prefix groups), 512 max
# output. Scaled: fewer requests, shorter outputs.
.venv/bin/locust -f locustfile.py --headless -u 128 -r 16 -n "${REQUESTS:-300}" -H "$url" \
  --input-tokens 2048 --prefix-tokens 1536 --prefix-groups 4 --max-tokens "${MAX_TOKENS:-256}" \
  --metrics-interval 2 --csv "$out/run" --csv-full-history --only-summary
.venv/bin/python -m reports "$out/run"
echo
echo "Results: $out/"
ls -1 "$out"
echo "Open $out/run_report.html for the charts and the summary."
