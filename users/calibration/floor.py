"""The client's floor: what the suite itself adds to TTFT and ITL against an emulator as fast as this machine
can host, and how many streamed chunks one client core keeps up with (``python -m users.calibrate`` and
``--calibrate``; the method is said there)."""

from __future__ import annotations

import csv
import json
import tempfile
from typing import Any

import numpy as np

from users.calibration.harness import FAST_EMULATOR, Harness

# the emulator's decode step: as fast a server as this machine can host
STEP_MS = 1.0


def calibrate(
    users: int,
    input_tokens: int,
    max_tokens: int,
    seconds: float = 10.0,
    endpoint: str = "chat",
    workdir: str | None = None,
) -> dict[str, Any]:
    """The floor at this concurrency and these sizes (raises RuntimeError with one line)."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        with Harness(tmp, "cal", ["--step-ms", f"{STEP_MS:g}", *FAST_EMULATOR]) as harness:
            try:
                harness.run(
                    [
                        "-u",
                        str(users),
                        "-r",
                        str(users),
                        "-t",
                        f"{seconds:g}s",
                        "--input-tokens",
                        str(input_tokens),
                        "--max-tokens",
                        str(max_tokens),
                        "--ignore-eos",
                        "--endpoint",
                        endpoint,
                        "--metrics-interval",
                        "0",
                    ],
                    timeout=seconds + 180,
                )
            except RuntimeError as exc:
                raise RuntimeError(f"the calibration run failed: {exc}") from None
        truth = harness.truth()
        with open(harness.prefix + "_requests.csv", newline="", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r["success"] == "true" and r["request_id"] in truth]
        # the CPU the test itself used
        with open(harness.prefix + "_client_cpu.json", encoding="utf-8") as f:
            cpu_s = float(json.load(f)["processes"]["local"]["cpu_seconds"])
    return floor(rows, truth, cpu_s, users, input_tokens, max_tokens)


def floor(
    rows: list[dict[str, str]],
    truth: dict[str, dict[str, Any]],
    cpu_s: float,
    users: int,
    input_tokens: int,
    max_tokens: int,
) -> dict[str, Any]:
    """The figures from the client's rows and the emulator's log for the same requests."""
    if not rows:
        raise RuntimeError("the calibration run finished no request")
    ttft = np.array([(float(r["ttft_s"]) - truth[r["request_id"]]["ttft_s"]) * 1e3 for r in rows])
    itl = np.array(
        [
            (
                (float(r["e2e_s"]) - float(r["ttft_s"]))
                - (truth[r["request_id"]]["e2e_s"] - truth[r["request_id"]]["ttft_s"])
            )
            / (int(r["output_tokens"]) - 1)
            * 1e3
            for r in rows
            if int(r["output_tokens"]) > 1
        ]
    )
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
