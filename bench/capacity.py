"""Benchmark: ``--find-capacity`` against the emulator's capacity as its settings give it.

    .venv/bin/python -m bench.capacity [--settings M:STEP:TOKENS ...] [--level-duration 15]

The emulator's engine (``emulator/engine.py``) runs steps: each emits one token for every running
sequence (at most ``--max-num-seqs`` M) and takes ``step_ms + step_ms_per_seq × running +
prefill_ms_per_token × prompt tokens computed in it``. Past saturation M sequences always run; a
request holds a slot for T steps (T output tokens with ``--ignore-eos``, the first at its
prefill step) and its P prompt tokens cost ``P × prefill_ms_per_token`` once. In one second,
``n`` steps and ``λ`` requests: ``n (s0 + s1 M) + λ P c = 1`` and ``n M = λ T``, so

    capacity λ = M / (T (s0 + s1 M) + M P c)   requests per second.

With an SLO loose enough that only saturation breaks it (TTFT 2 s here), the highest rate that
meets it is that capacity. Each setting runs the emulator pinned to one core and ``locust
--find-capacity`` (headless, the other core), then compares. Also checks that the
over-saturation stop ends a level above capacity within 30 s of its start, and where ``--sweep auto``
puts its levels against the knee (``reports.metrics.knee_rate``). Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from users.calibration.harness import ROOT, Harness

# the emulator's defaults
STEP_MS_PER_SEQ = 0.15
PREFILL_MS_PER_TOKEN = 0.005


def emulator_capacity(
    max_num_seqs: int,
    step_ms: float,
    output_tokens: int,
    prompt_tokens: int,
    step_ms_per_seq: float = STEP_MS_PER_SEQ,
    prefill_ms_per_token: float = PREFILL_MS_PER_TOKEN,
) -> float:
    """Requests per second the emulator completes when saturated (the arithmetic above)."""
    step_s = (step_ms + step_ms_per_seq * max_num_seqs) / 1000
    return max_num_seqs / (output_tokens * step_s + max_num_seqs * prompt_tokens * prefill_ms_per_token / 1000)


def run_levels(
    harness: Harness, prefix: str, tokens: int, prompt: int, level_duration: float, plan: tuple[str, ...]
) -> tuple[dict, float]:
    """One headless run in levels (``plan``: --find-capacity or --sweep auto), then its report's summary."""
    started = time.monotonic()
    harness.run(
        [
            "-u",
            "1",
            "--max-tokens",
            str(tokens),
            "--input-tokens",
            str(prompt),
            "--ignore-eos",
            *plan,
            "--slo",
            "ttft_ms=2000",
            "--slo-attainment",
            "0.9",
            "--level-duration",
            str(level_duration),
            "--max-concurrency",
            "64",
        ],
        timeout=1800,
        prefix=prefix,
    )
    took = time.monotonic() - started
    subprocess.run([sys.executable, "-m", "reports", prefix], cwd=ROOT, check=True, capture_output=True, timeout=600)
    with open(f"{prefix}_summary.json", encoding="utf-8") as f:
        return json.load(f), took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["4:5:8", "8:10:16", "16:4:32"],
        help="emulator settings as MAX_NUM_SEQS:STEP_MS:OUTPUT_TOKENS",
    )
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--level-duration", type=float, default=15.0)
    parser.add_argument("--keep", default="", help="keep each run's CSVs and report under this folder")
    args = parser.parse_args()
    for setting in args.settings:
        print(json.dumps(measure_setting(setting, args)), flush=True)


def measure_setting(setting: str, args: argparse.Namespace) -> dict:
    """One emulator setting: its capacity search and its automatic sweep, beside the arithmetic's capacity."""
    m, step, tokens = setting.split(":")
    expected = emulator_capacity(int(m), float(step), int(tokens), args.prompt_tokens)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = os.path.join(args.keep, setting.replace(":", "_")) if args.keep else scratch
        os.makedirs(tmp, exist_ok=True)
        with Harness(tmp, "emulator", ["--max-num-seqs", m, "--step-ms", step], pin=True) as harness:
            load = (int(tokens), args.prompt_tokens, args.level_duration)
            summary, took = run_levels(harness, os.path.join(tmp, "cap"), *load, ("--find-capacity",))
            auto, auto_took = run_levels(harness, os.path.join(tmp, "auto"), *load, ("--sweep", "auto"))
    knee = auto.get("knee_rate")
    auto_levels = auto.get("levels") or []
    below = [lv for lv in auto_levels if knee is not None and (lv.get("offered_rate") or 0) <= knee]
    levels = summary.get("levels") or []
    saturated = [lv for lv in levels if lv.get("saturated")]
    return {
        "setting": setting,
        "expected_rps": round(expected, 2),
        "capacity_rps": summary.get("capacity_rps"),
        "capacity_rps_ci": summary.get("capacity_rps_ci"),
        "error": round(summary["capacity_rps"] / expected - 1, 4) if summary.get("capacity_rps") else None,
        "capacity_goodput_tok_s": summary.get("capacity_goodput_tok_s"),
        "levels": len(levels),
        "saturated_levels_ended_after_s": [round(lv["end"] - lv["start"], 1) for lv in saturated],
        "search_seconds": round(took, 1),
        "auto_levels": len(auto_levels),
        "auto_knee_rps": knee,
        "auto_levels_below_knee": len(below),
        "auto_seconds": round(auto_took, 1),
    }


if __name__ == "__main__":
    main()
