"""Benchmark: how much the load generator distorts what it measures.

    .venv/bin/python -m bench.client_overhead [--seconds 20] [--conditions 128x50,128x500,512x50]
                                              [--users VLLMUser,OpenAISDKUser] [--timestamps kernel,read]
                                              [--json OUT]

The emulator runs pinned to one core in batched-step mode (every running stream gets
its token in the same decode step, as vLLM does); the client, a real headless
``locust`` process, is pinned to the other. The truth comes from the emulator:
its per-request log (when each request reached its socket, by the kernel's stamp,
and when it wrote the first token) and its ``vllm:generation_tokens_total`` counter.
For each condition, STREAMS x RATE (tok/s per stream), 256 output tokens per request:

- TTFT error = client TTFT - emulator TTFT, per request after the ramp-up (p50, p99,
  max), in ms, with its two legs: client start -> the request reaching the emulator,
  and the emulator's write of the first token -> the client's date for it;
- achieved load = tokens the emulator emitted per second / (streams x rate), in
  the steady window after every stream started; it is the product of the step rate
  (decode steps per second / rate: falls when the emulator runs late) and occupancy
  (tokens per step / streams: falls when streams wait for their next request);
- client CPU per streamed chunk, in microseconds (process CPU time / chunks).

``--timestamps`` runs VLLMUser with reads dated by the kernel (the default) and/or by
the time the read returned (``--no-kernel-timestamps``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import sys
import tempfile
import time
import urllib.request

import numpy as np
import psutil

from users.calibration.harness import FAST_EMULATOR, Harness, stop

OUTPUT_TOKENS = 256
RAMP_S = 1.5


def generation_tokens(url: str) -> float:
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    m = re.search(r"^vllm:generation_tokens_total\{[^}]*\} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def emulator_steps(url: str) -> int:
    return int(json.loads(urllib.request.urlopen(url + "/emulator/stats", timeout=10).read())["steps"])


class Reading:
    """The client's and the emulator's CPU seconds, emitted tokens and decode steps at one moment."""

    def __init__(self, client: psutil.Process, emulator: psutil.Process, url: str) -> None:
        self.client_cpu = sum(client.cpu_times()[:2])
        self.emulator_cpu = sum(emulator.cpu_times()[:2])
        self.tokens, self.steps, self.t = generation_tokens(url), emulator_steps(url), time.monotonic()


def run_condition(streams: int, rate: float, seconds: float, user: str, tmp: str, kernel_stamps: bool = True) -> dict:
    tag = f"{user}-{streams}x{rate:g}-{'kernel' if kernel_stamps else 'read'}"
    emulator_args = ["--step-ms", f"{1000.0 / rate}", *FAST_EMULATOR, "--max-num-seqs", str(streams * 2)]
    with Harness(tmp, tag, emulator_args, pin=True) as harness:
        client = harness.start(
            [
                "-u",
                str(streams),
                "-r",
                str(streams),
                "--max-tokens",
                str(OUTPUT_TOKENS),
                "--ignore-eos",
                "--input-tokens",
                "64",
                "--metrics-interval",
                "0",
                *([] if kernel_stamps else ["--no-kernel-timestamps"]),
                user,
            ]
        )
        procs = psutil.Process(client.pid), psutil.Process(harness.emulator.pid)
        # steady window: from one output's worth after the ramp until the end
        warm = min(OUTPUT_TOKENS / rate + 1.0, seconds / 3)
        time.sleep(warm)
        first = Reading(*procs, harness.url)
        time.sleep(seconds - warm)
        last = Reading(*procs, harness.url)
        stop(client, signal.SIGINT, 60)
    truth = {k: t for k, t in harness.truth().items() if t.get("ttft_s") is not None}
    with open(harness.prefix + "_requests.csv", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["ttft_s"] and row["request_id"] in truth]
    return {
        "user": user,
        "timestamps": "kernel" if kernel_stamps else "read",
        "streams": streams,
        "rate_tok_s": rate,
        **ttft_errors(rows, truth),
        **load_and_cpu(first, last, streams, rate),
    }


def ttft_errors(rows: list[dict[str, str]], truth: dict[str, dict]) -> dict:
    """Client TTFT - emulator TTFT per request after the ramp-up, and its two legs."""
    errors, to_server, to_client = [], [], []
    # every request but the first of each user (the ramp-up, -r streams/s: within the first second)
    ramp_end = min((float(row["start_time"]) for row in rows), default=0.0) + RAMP_S
    for row in rows:
        t = truth[row["request_id"]]
        if float(row["start_time"]) >= ramp_end:
            errors.append((float(row["ttft_s"]) - t["ttft_s"]) * 1000.0)
            # the error's two legs, by wall clock (same host): request out, first token back
            to_server.append((t["received_wall"] - float(row["start_time"])) * 1000.0)
            to_client.append((float(row["start_time"]) + float(row["ttft_s"]) - t["first_token_wall"]) * 1000.0)
    err = np.array(errors)
    return {
        "requests_compared": len(errors),
        "ttft_error_p50_ms": round(float(np.percentile(err, 50)), 2) if len(err) else None,
        "ttft_error_p99_ms": round(float(np.percentile(err, 99)), 2) if len(err) else None,
        "ttft_error_max_ms": round(float(err.max()), 2) if len(err) else None,
        "request_leg_p50_p99_ms": _p50_p99(to_server),
        "token_leg_p50_p99_ms": _p50_p99(to_client),
    }


def load_and_cpu(first: Reading, last: Reading, streams: int, rate: float) -> dict:
    """The achieved load in the steady window, and what it cost each process."""
    span = last.t - first.t
    emitted = last.tokens - first.tokens
    steps = last.steps - first.steps
    client_cpu = last.client_cpu - first.client_cpu
    # every token is one SSE chunk; each request adds a role chunk, a usage chunk and [DONE]
    chunks = emitted * (1 + 3 / OUTPUT_TOKENS)
    return {
        "offered_tok_s": streams * rate,
        "achieved_tok_s": round(emitted / span, 1),
        "achieved_pct": round(100 * emitted / span / (streams * rate), 1),
        # achieved = (decode steps per second / rate) x (streams with a token per step / streams):
        # the first falls when the emulator runs late, the second when streams wait for requests
        "step_rate_pct": round(100 * steps / span / rate, 1),
        "occupancy_pct": round(100 * emitted / max(steps, 1) / streams, 1),
        "client_cpu_pct": round(100 * client_cpu / span, 1),
        "emulator_cpu_pct": round(100 * (last.emulator_cpu - first.emulator_cpu) / span, 1),
        "client_us_per_chunk": round(1e6 * client_cpu / chunks, 1) if chunks else None,
    }


def _p50_p99(values: list[float]) -> list[float] | None:
    if not values:
        return None
    return [round(float(np.percentile(values, q)), 2) for q in (50, 99)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--conditions", default="128x50,128x500,512x50")
    ap.add_argument("--users", default="VLLMUser,OpenAISDKUser")
    ap.add_argument(
        "--timestamps",
        default="kernel,read",
        help="kernel, read or both: how VLLMUser dates reads (read = --no-kernel-timestamps)",
    )
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()
    if os.cpu_count() < 2:
        print("note: one core only; client and emulator share it", file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for user in args.users.split(","):
            # the SDK user reads through httpx: the kernel's timestamps do not apply to it
            modes = args.timestamps.split(",") if user == "VLLMUser" else ["read"]
            for mode in modes:
                for cond in args.conditions.split(","):
                    streams, rate = cond.split("x")
                    r = run_condition(int(streams), float(rate), args.seconds, user, tmp, mode == "kernel")
                    results.append(r)
                    print(json.dumps(r), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    print(
        "\n| client | reads dated by | streams x tok/s | TTFT error p50 / p99 (ms) | achieved load "
        "| client CPU/chunk | emulator CPU |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['user']} | {r['timestamps']} | {r['streams']} x {r['rate_tok_s']:g} | {r['ttft_error_p50_ms']} / "
            f"{r['ttft_error_p99_ms']} | {r['achieved_pct']}% | {r['client_us_per_chunk']} µs | "
            f"{r['emulator_cpu_pct']}% |"
        )


if __name__ == "__main__":
    main()
