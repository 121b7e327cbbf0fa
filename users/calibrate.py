"""The client's floor on this machine: what the suite itself adds to TTFT and ITL, and how many streamed
chunks one client core keeps up with.

    .venv/bin/python -m users.calibrate [-u 128] [--input-tokens 2048] [--max-tokens 512] [--seconds 10]
                                        [--endpoint chat] [--out FILE]

or ``--calibrate`` in a run (same concurrency, prompt and output sizes; ``PREFIX_calibration.json``,
shown in the report). The emulator (``python -m emulator``) runs with no prefill cost and 1 ms decode
steps, as fast a server as this machine can host; a headless ``locust`` with the run's sizes streams
from it. Its log is the truth: the client's TTFT minus the emulator's for the same request (the
emulator counts from the kernel's receive stamp to its write of the first token), and the same for the
decode span over the tokens after the first (the ITL error). Chunks per client CPU second = streamed
chunks / the client process's CPU time during the test (its CPU guard's count: start-up not included).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMULATOR = ["--step-ms", "1", "--step-ms-per-seq", "0", "--prefill-ms-per-token", "0", "--max-num-seqs", "4096",
            "--max-num-batched-tokens", "10000000", "--eos-prob", "0"]  # fmt: skip


def calibrate(users: int, input_tokens: int, max_tokens: int, seconds: float = 10.0, endpoint: str = "chat",
              workdir: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The floor at this concurrency and these sizes (raises RuntimeError with one line)."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        log = os.path.join(tmp, "emulator.jsonl")
        emu = subprocess.Popen([sys.executable, "-m", "emulator", "--port", "0", "--request-log", log, *EMULATOR],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               stdin=subprocess.DEVNULL)  # fmt: skip
        try:
            assert emu.stdout is not None
            first = emu.stdout.readline().split()
            if len(first) < 4 or first[0] != "emulator":
                raise RuntimeError(f"the calibration's emulator did not start: {' '.join(first)}")
            threading.Thread(target=emu.stdout.read, daemon=True).start()
            prefix = os.path.join(tmp, "cal")
            client = subprocess.run(
                [os.path.join(os.path.dirname(sys.executable), "locust"), "-f", os.path.join(ROOT, "locustfile.py"),
                 "--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds:g}s", "-H", first[3],
                 "--input-tokens", str(input_tokens), "--max-tokens", str(max_tokens), "--ignore-eos",
                 "--endpoint", endpoint, "--metrics-interval", "0", "--csv", prefix, "--only-summary",
                 "--loglevel", "WARNING"],
                cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=seconds + 180,
                env={k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")},
            )  # fmt: skip
        finally:
            emu.terminate()
            emu.wait(30)
        if client.returncode != 0:
            last = (client.stderr or client.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"the calibration run failed: {last[0]}")
        truth = {}
        with open(log, encoding="utf-8") as f:
            for line in f:
                t = json.loads(line)
                truth[t["id"]] = t
        with open(prefix + "_requests.csv", newline="", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r["success"] == "true" and r["request_id"] in truth]
        with open(prefix + "_client_cpu.json", encoding="utf-8") as f:  # the CPU the test itself used
            cpu_s = float(json.load(f)["processes"]["local"]["cpu_seconds"])
    return floor(rows, truth, cpu_s, users, input_tokens, max_tokens)


def floor(rows: list[dict[str, str]], truth: dict[str, dict[str, Any]], cpu_s: float, users: int,
          input_tokens: int, max_tokens: int) -> dict[str, Any]:  # fmt: skip
    """The figures from the client's rows and the emulator's log for the same requests."""
    if not rows:
        raise RuntimeError("the calibration run finished no request")
    ttft = np.array([(float(r["ttft_s"]) - truth[r["request_id"]]["ttft_s"]) * 1e3 for r in rows])
    itl = np.array([
        ((float(r["e2e_s"]) - float(r["ttft_s"])) - (truth[r["request_id"]]["e2e_s"] - truth[r["request_id"]]["ttft_s"]))
        / (int(r["output_tokens"]) - 1) * 1e3
        for r in rows if int(r["output_tokens"]) > 1
    ])  # fmt: skip
    chunks = sum(int(r["output_tokens"]) for r in rows)
    return {
        "users": users,
        "input_tokens": input_tokens,
        "max_tokens": max_tokens,
        "requests": len(rows),
        "client_floor_ttft_error_p50_ms": float(np.percentile(ttft, 50)),
        "client_floor_ttft_error_p99_ms": float(np.percentile(ttft, 99)),
        "client_floor_itl_error_mean_ms": float(itl.mean()) if itl.size else None,
        "client_chunks_per_cpu_s": chunks / cpu_s if cpu_s > 0 else None,
    }


def describe(result: dict[str, Any]) -> str:
    per_core = result.get("client_chunks_per_cpu_s")
    return (
        f"client floor at {result['users']} streams of {result['input_tokens']} -> {result['max_tokens']} tokens: "
        f"TTFT error p50/p99 {result['client_floor_ttft_error_p50_ms']:.2f}/{result['client_floor_ttft_error_p99_ms']:.2f}"
        f" ms, ITL error {result['client_floor_itl_error_mean_ms'] or 0:.3f} ms; one client core streams "
        f"{per_core or 0:,.0f} chunks/s"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m users.calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("-u", "--users", type=int, default=128)
    p.add_argument("--input-tokens", type=int, default=2048)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--endpoint", choices=("chat", "completions"), default="chat")
    p.add_argument("--out", default="", help="write the figures here (JSON)")
    args = p.parse_args(argv)
    if min(args.users, args.input_tokens, args.max_tokens) < 1 or not args.seconds > 0:
        print("error: -u, --input-tokens and --max-tokens must be at least 1, --seconds positive", file=sys.stderr)
        return 2
    try:
        result = calibrate(args.users, args.input_tokens, args.max_tokens, args.seconds, args.endpoint)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(describe(result))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
