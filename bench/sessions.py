"""Benchmark: thousands of concurrent sessions with think time in one worker process.

    .venv/bin/python -m bench.sessions [--sessions 2000] [--think 10] [--seconds 40] [--json OUT]

A real headless ``locust`` (one process) runs ``--sessions`` users, each holding a conversation (256-token
first prompt, 32-token follow-ups, 16-token answers) with an exponential think time of mean ``--think``
seconds between turns, against the emulator (pinned apart, every stream served in one step). Most sessions
are thinking at any moment: their greenlet, history and the user's idle keep-alive connection (the
emulator closes it after its keep-alive timeout, as vLLM does, and the client reconnects) are what a
session costs at rest. Measured in the steady window after every user started:

- memory per session: (the client's RSS at N sessions - its RSS at 20) / (N - 20);
- client CPU per turn: the client's CPU seconds / the turns that ended in the window;
- turns per second, and the TTFT error against the emulator's truth (p50, p99): accuracy held.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import tempfile
import time

import numpy as np
import psutil

from users.calibration.harness import FAST_EMULATOR, Harness, stop

BASELINE = 20


def run(sessions: int, think: float, seconds: float, tmp: str) -> dict:
    """One client at ``sessions`` concurrent sessions: its RSS, CPU and turns in the steady window."""
    emulator_args = ["--step-ms", "20", *FAST_EMULATOR, "--max-num-seqs", str(sessions + 16)]
    with Harness(tmp, f"sessions-{sessions}", emulator_args, pin=True) as harness:
        load = [
            "-u",
            str(sessions),
            "-r",
            str(max(sessions // 4, 1)),
            "--turns",
            "1000",
            "--think-time",
            f"exp:{think}",
        ]
        sizes = ["--input-tokens", "256", "--turn-tokens", "32", "--max-tokens", "16", "--ignore-eos"]
        client = harness.start([*load, *sizes, "--metrics-interval", "0"])
        proc = psutil.Process(client.pid)
        # every user started, and its first turn answered
        warm = 4.0 + think
        time.sleep(warm)
        cpu0, t0 = sum(proc.cpu_times()[:2]), time.time()
        rss = []
        while time.time() - t0 < seconds:
            time.sleep(1.0)
            rss.append(proc.memory_info().rss)
        cpu1, t1 = sum(proc.cpu_times()[:2]), time.time()
        stop(client, signal.SIGINT, 60)
    truth = {k: t for k, t in harness.truth().items() if t.get("ttft_s") is not None}
    with open(harness.prefix + "_requests.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["success"] == "true" and r["request_id"] in truth]
    window = [r for r in rows if t0 <= float(r["start_time"]) + float(r["e2e_s"]) < t1]
    errors = np.array([(float(r["ttft_s"]) - truth[r["request_id"]]["ttft_s"]) * 1000 for r in window])
    return {
        "sessions": sessions,
        "rss_mb": round(float(np.median(rss)) / 2**20, 1),
        "turns_per_s": round(len(window) / (t1 - t0), 1),
        "client_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
        "client_cpu_ms_per_turn": round(1000 * (cpu1 - cpu0) / max(len(window), 1), 2),
        "later_turns": sum(1 for r in window if r["turn"] not in ("", "1")),
        "ttft_error_p50_p99_ms": [round(float(np.percentile(errors, q)), 2) for q in (50, 99)] if errors.size else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sessions", description=__doc__)
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--think", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        few = run(BASELINE, args.think, args.seconds, tmp)
        many = run(args.sessions, args.think, args.seconds, tmp)
    per_session_kb = (many["rss_mb"] - few["rss_mb"]) * 1024 / (args.sessions - BASELINE)
    out = {"baseline": few, "many": many, "kb_per_session": round(per_session_kb, 1)}
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
