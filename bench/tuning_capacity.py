"""Benchmark: the tuning loop with a capacity search at each point of a 2×2 grid on the emulator
(``--max-num-seqs`` × prefix caching), each point's ``capacity_rps`` against the emulator's arithmetic.

    .venv/bin/python -m bench.tuning_capacity [--level-duration 12] [--max-num-seqs 4 8] [--caching off on]
                                              [--keep DIR]

The arithmetic is ``bench.capacity.emulator_capacity`` with the prompt tokens the server computes: all of
them with the cache off, those past the shared prefix with it on (the prefix is a whole number of blocks
here, and one group's first request is the only miss). Prints one JSON line per point and the loop's time;
exits 1 when a point's capacity is more than ``--tolerance`` (10%) off.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import yaml

from bench.capacity import emulator_capacity
from users.calibration.harness import ROOT

# 960: 60 blocks of 16
STEP_MS, PREFILL_MS_PER_TOKEN, OUTPUT, PROMPT, PREFIX = 5.0, 0.02, 8, 1024, 960


def grid(level_duration: float, max_num_seqs: list[int], caching: list[bool]) -> dict:
    return {
        "server": {
            "command": f"{sys.executable} -m emulator --port {{port}} --step-ms {STEP_MS} --prefill-ms-per-token "
            f"{PREFILL_MS_PER_TOKEN} --max-num-seqs {{max_num_seqs}} {{enable_prefix_caching}}"
        },
        "url": "http://127.0.0.1:0",
        "ready_timeout_s": 60,
        "settings": {"max_num_seqs": max_num_seqs, "enable_prefix_caching": caching},
        "workload": [
            "-u",
            "1",
            "--find-capacity",
            "--slo",
            "ttft_ms=2000",
            "--slo-attainment",
            "0.9",
            "--level-duration",
            str(level_duration),
            "--max-concurrency",
            "64",
            "--max-tokens",
            str(OUTPUT),
            "--input-tokens",
            str(PROMPT),
            "--prefix-tokens",
            str(PREFIX),
            "--ignore-eos",
        ],
        "objective": {"maximize": "capacity_rps"},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level-duration", type=float, default=12.0)
    parser.add_argument("--max-num-seqs", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--caching", nargs="+", choices=("off", "on"), default=["off", "on"])
    parser.add_argument("--tolerance", type=float, default=0.10, help="exit 1 when a point is further off")
    parser.add_argument("--keep", default="", help="keep the loop's folder here")
    args = parser.parse_args()
    summary, took = run_loop(args)
    if summary is None:
        return 1
    worst = 0.0
    for point in summary["points"]:
        m, cached = point["settings"]["max_num_seqs"], point["settings"]["enable_prefix_caching"]
        prompt = PROMPT - PREFIX if cached else PROMPT
        expected = emulator_capacity(m, STEP_MS, OUTPUT, prompt, prefill_ms_per_token=PREFILL_MS_PER_TOKEN)
        found = point["figures"].get("capacity_rps")
        error = found / expected - 1 if found else None
        worst = max(worst, abs(error) if error is not None else 1.0)
        line = {"point": point["name"], "expected_rps": round(expected, 2), "capacity_rps": found}
        print(json.dumps({**line, "error": None if error is None else round(error, 4)}), flush=True)
    best = (summary.get("best") or {}).get("name")
    print(json.dumps({"best": best, "loop_seconds": round(took, 1), "worst_error": round(worst, 4)}), flush=True)
    return 0 if worst <= args.tolerance else 1


def run_loop(args: argparse.Namespace) -> tuple[dict | None, float]:
    """The tuning loop over the grid, as its command runs it: its summary (None: it failed) and seconds."""
    with tempfile.TemporaryDirectory() as scratch:
        out = args.keep or os.path.join(scratch, "out")
        path = os.path.join(scratch, "grid.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(
                grid(args.level_duration, args.max_num_seqs, [c == "on" for c in args.caching]), f, sort_keys=False
            )
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "tuning", path, "--out", out], cwd=ROOT, capture_output=True, text=True, timeout=3600
        )
        took = time.monotonic() - started
        if done.returncode != 0:
            print(done.stdout + done.stderr, file=sys.stderr)
            return None, took
        with open(os.path.join(out, "tuning_summary.json"), encoding="utf-8") as f:
            return json.load(f), took


if __name__ == "__main__":
    sys.exit(main())
