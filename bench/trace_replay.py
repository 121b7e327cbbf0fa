"""Benchmark: does a trace replay send each request at its time, with its exact lengths, and how much
of what the trace shares does the server's prefix cache hold?

    .venv/bin/python -m bench.trace_replay [--seconds 30] [--rate 50] [--json OUT]

A generated Mooncake-style trace (``tools.make_trace``: Poisson arrivals at ``--rate``, 8 shared
prefixes of Zipf popularity, 512-token blocks) is replayed on ``/v1/completions`` by a real headless
``locust`` pinned to one core against the emulator pinned to the other (16-token blocks, as vLLM),
twice: with a cache larger than the trace's working set, and with one of 256 blocks (4096 tokens).
The truth is the emulator's log (kernel receive times, prompt lengths, cached tokens). Reported:
achieved vs trace rate at the server, schedule lag p50/p99/max, the spread of the receive times
around the trace's (p99 of |late - median late|), exact lengths, and the prefix cache's efficiency
(measured / ideal hit rate). Also: the cost of building one trace prompt in the client (10 blocks, one of
them new: each request shifts the window of hash ids by one).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time

import numpy as np

from prompts.trace_prompts import TracePrompts
from scheduler.trace import Trace, TraceRequest, load_trace
from tools.make_trace import main as make_trace
from users.calibration.harness import FAST_EMULATOR, Harness


class WordCounter:
    """Counts as the emulator does (words and marks; BOS): a stand-in to time prompt building."""

    name = "words"

    def count(self, content: str, chat: bool) -> int:
        return len(content.split()) + 1


def prompt_build_us(blocks: int = 10, n: int = 2000) -> float:
    requests = tuple(TraceRequest(i, float(i), blocks * 512, 8, tuple(range(i, i + blocks))) for i in range(n))
    source = TracePrompts(WordCounter(), False, Trace("bench", "mooncake", requests, 512))
    started = time.perf_counter()
    for i in range(n):
        source.prompt_for(i)
    return (time.perf_counter() - started) / n * 1e6


def replay(path: str, seconds: float, rate: float, blocks: int, tmp: str) -> dict:
    with Harness(
        tmp, f"blocks-{blocks}", ["--step-ms", "10", *FAST_EMULATOR, "--num-blocks", str(blocks)], pin=True
    ) as harness:
        harness.run(
            ["-u", "1", "-r", "1", "--trace", path, "--endpoint", "completions", "--metrics-interval", "0"],
            seconds * 4 + 120,
        )
    prefix, truth = harness.prefix, harness.truth()
    trace = load_trace(path)
    with open(prefix + "_requests.csv", newline="") as f:
        rows = sorted((r for r in csv.DictReader(f) if r["request_id"] in truth), key=lambda r: int(r["trace_index"]))
    received = np.array([truth[r["request_id"]]["received_wall"] for r in rows])
    due = np.array([trace.requests[int(r["trace_index"])].time_s for r in rows])
    late = received - received[0] - due
    lags = np.array([float(r["schedule_lag_s"]) for r in rows]) * 1e3
    exact = all(
        truth[r["request_id"]]["prompt_tokens"] == trace.requests[int(r["trace_index"])].input_length
        and int(r["output_tokens"]) == trace.requests[int(r["trace_index"])].output_length
        for r in rows
    )
    prompt = sum(int(r["prompt_tokens"]) for r in rows)
    measured = sum(int(r["cached_tokens"]) for r in rows) / prompt
    ideal = sum(int(r["ideal_cached_tokens"]) for r in rows) / prompt
    return {
        "cache_blocks": blocks,
        "requests": len(rows),
        "trace_rate": round(trace.rate(), 2),
        "achieved_rate_at_server": round((len(rows) - 1) / (received[-1] - received[0]), 2),
        "lag_p50_ms": round(float(np.percentile(lags, 50)), 3),
        "lag_p99_ms": round(float(np.percentile(lags, 99)), 3),
        "lag_max_ms": round(float(lags.max()), 3),
        "arrival_spread_p99_ms": round(float(np.percentile(np.abs(late - np.median(late)), 99)) * 1e3, 3),
        "exact_lengths": exact,
        "ideal_hit_rate": round(ideal, 4),
        "measured_hit_rate": round(measured, 4),
        "efficiency": round(measured / ideal, 4) if ideal else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the trace")
    parser.add_argument("--rate", type=float, default=50.0, help="the trace's mean arrival rate")
    parser.add_argument("--json", default="", help="also write the results here")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.jsonl")
        make_trace(
            [
                path,
                "--requests",
                str(int(args.seconds * args.rate)),
                "--rate",
                f"{args.rate:g}",
                "--output-tokens",
                "32",
                "--seed",
                "7",
            ]
        )
        for blocks in (200_000, 256):
            result = replay(path, args.seconds, args.rate, blocks, tmp)
            print(json.dumps(result), flush=True)
            results.append(result)
    build = prompt_build_us()
    print(json.dumps({"prompt_build_us_10_blocks": round(build, 1)}))
    print()
    print(
        "| cache (16-token blocks) | requests | trace / achieved req/s | lag p50 / p99 / max ms | arrival spread p99 ms "
        "| exact lengths | ideal / measured hit rate | efficiency |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['cache_blocks']} | {r['requests']} | {r['trace_rate']} / {r['achieved_rate_at_server']} | "
            f"{r['lag_p50_ms']} / {r['lag_p99_ms']} / {r['lag_max_ms']} | {r['arrival_spread_p99_ms']} | "
            f"{r['exact_lengths']} | {r['ideal_hit_rate']} / {r['measured_hit_rate']} | {r['efficiency']} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"replays": results, "prompt_build_us_10_blocks": build}, f, indent=2)


if __name__ == "__main__":
    main()
    sys.exit(0)
