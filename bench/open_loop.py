"""Benchmark: does the open loop send what it was asked to, when it was asked to?

    .venv/bin/python -m bench.open_loop [--seconds 10] [--conditions 20x1:256,100xinf:256] [--json OUT]

As in ``bench.client_overhead``, the emulator runs pinned to one core (10 ms decode steps,
no prefill cost) and the client, a real headless ``locust``, to the other. The truth is
the emulator's log: the kernel's receive time of every request. For each condition
(rate R req/s, burstiness B, output tokens chosen so that about R x E2E streams are open):

- achieved rate = (n - 1) / (span of the receive times), against R and against the drawn
  schedule's own rate (a finite Poisson sample differs from R);
- the receive gaps' law: the Kolmogorov-Smirnov statistic against the exponential law with
  the schedule's rate (B = 1; the 1% critical value is 1.628 / sqrt(n)) and the coefficient
  of variation (B = 4: 1 / sqrt(4) = 0.5; B = inf: 0);
- schedule lag (due -> released by the scheduler) p50/p99/max, from the rows;
- TTFT error = client TTFT - emulator TTFT, p50/p99, as in ``bench.client_overhead``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tempfile

import numpy as np

from users.calibration.harness import FAST_EMULATOR, Harness

STEP_MS = 10.0
# (rate, burstiness, output tokens): 256 open streams at 100 and 400 req/s (R x 256 or 64 steps of 10 ms)
CONDITIONS = [(20.0, 1.0, 256), (100.0, 1.0, 256), (400.0, 1.0, 64), (100.0, 4.0, 256), (100.0, math.inf, 256)]


def ks_exponential(gaps: np.ndarray, rate: float) -> float:
    x = np.sort(gaps)
    cdf = 1.0 - np.exp(-rate * x)
    n = x.size
    return float(max((np.arange(1, n + 1) / n - cdf).max(), (cdf - np.arange(n) / n).max()))


def run_condition(rate: float, burstiness: float, tokens: int, seconds: float, tmp: str) -> dict:
    n = int(rate * seconds)
    tag = f"{rate:g}-{burstiness:g}"
    with Harness(tmp, tag, ["--step-ms", f"{STEP_MS}", *FAST_EMULATOR], pin=True) as harness:
        load = f"-u 1 -r 1 -n {n} --request-rate {rate:g} --burstiness {burstiness:g} --max-tokens {tokens}"
        harness.run(
            [*load.split(), "--ignore-eos", "--input-tokens", "64", "--metrics-interval", "0"], seconds * 4 + 120
        )
    prefix, truth = harness.prefix, harness.truth()
    with open(prefix + "_requests.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["request_id"] in truth]
    due = np.sort([float(r["scheduled_time"]) for r in rows])
    received = np.sort([truth[r["request_id"]]["received_wall"] for r in rows])
    gaps = np.diff(received)
    scheduled_rate = (due.size - 1) / (due[-1] - due[0])
    achieved = (received.size - 1) / (received[-1] - received[0])
    lags = np.array([float(r["schedule_lag_s"]) for r in rows]) * 1e3
    ttft_err = np.array([(float(r["ttft_s"]) - truth[r["request_id"]]["ttft_s"]) * 1e3 for r in rows if r["ttft_s"]])
    # the TTFT error's two legs, by wall clock (same host): request out, first token back
    to_server = [(truth[r["request_id"]]["received_wall"] - float(r["start_time"])) * 1e3 for r in rows]
    to_client = [
        (float(r["start_time"]) + float(r["ttft_s"]) - truth[r["request_id"]]["first_token_wall"]) * 1e3
        for r in rows
        if r["ttft_s"] and truth[r["request_id"]].get("first_token_wall")
    ]
    in_flight = rate * (tokens * STEP_MS / 1000.0)
    return {
        "rate": rate,
        "burstiness": burstiness,
        "requests": len(rows),
        "open_streams_about": round(in_flight),
        "scheduled_rate": round(scheduled_rate, 3),
        "achieved_rate": round(achieved, 3),
        "achieved_vs_scheduled_pct": round(100 * achieved / scheduled_rate, 2),
        "achieved_vs_requested_pct": round(100 * achieved / rate, 2),
        "gap_cv": round(float(gaps.std() / gaps.mean()), 3),
        "ks_statistic": round(ks_exponential(gaps, scheduled_rate), 4) if burstiness == 1.0 else None,
        "ks_critical_1pct": round(1.628 / math.sqrt(gaps.size), 4) if burstiness == 1.0 else None,
        "lag_p50_ms": round(float(np.percentile(lags, 50)), 3),
        "lag_p99_ms": round(float(np.percentile(lags, 99)), 3),
        "lag_max_ms": round(float(lags.max()), 3),
        "ttft_error_p50_ms": round(float(np.percentile(ttft_err, 50)), 2),
        "ttft_error_p99_ms": round(float(np.percentile(ttft_err, 99)), 2),
        "request_leg_p50_p99_ms": [round(float(np.percentile(to_server, q)), 2) for q in (50, 99)],
        "token_leg_p50_p99_ms": [round(float(np.percentile(to_client, q)), 2) for q in (50, 99)],
        "all_succeeded": all(r["success"] == "true" for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each condition's schedule")
    parser.add_argument("--json", default="", help="also write the results here")
    parser.add_argument("--conditions", default="", help="RATExBURSTINESS:TOKENS,... (default: the README's five)")
    args = parser.parse_args()
    conditions = CONDITIONS
    if args.conditions:
        conditions = []
        for part in args.conditions.split(","):
            shape, _, tokens = part.partition(":")
            rate, _, burstiness = shape.partition("x")
            conditions.append((float(rate), float(burstiness), int(tokens)))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rate, burstiness, tokens in conditions:
            result = run_condition(rate, burstiness, tokens, args.seconds, tmp)
            print(json.dumps(result), flush=True)
            results.append(result)
    print()
    print(
        "| R req/s | B | open streams | achieved / scheduled | achieved / R | gap CV | KS (1% crit.) "
        "| lag p50 / p99 / max ms | TTFT error p50 / p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ks = f"{r['ks_statistic']} ({r['ks_critical_1pct']})" if r["ks_statistic"] is not None else "—"
        print(
            f"| {r['rate']:g} | {r['burstiness']:g} | {r['open_streams_about']} | {r['achieved_vs_scheduled_pct']}% "
            f"| {r['achieved_vs_requested_pct']}% | {r['gap_cv']} | {ks} | {r['lag_p50_ms']} / {r['lag_p99_ms']} / "
            f"{r['lag_max_ms']} | {r['ttft_error_p50_ms']} / {r['ttft_error_p99_ms']} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
    sys.exit(0)
