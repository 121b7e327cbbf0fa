"""Benchmark: does the capacity search's interval hold the truth, and how wide is it?

    .venv/bin/python -m bench.capacity_truth [--runs 40] [--emulator-runs 0] [--level-duration 30]

Two servers whose capacity within an SLO is known from a simulation of their queue
(``bench/queue_sim.py``: the highest rate at which the long-run share of requests within the TTFT
limit is the target):

- **simulated**: the queue of issue #36 (8 slots, 50 ms to the first token, 0.36 s in all),
  and the suite's own search (``scheduler.levels``: its plan, its extensions, its answer) run against
  it in virtual time, ``--runs`` times per SLO, each with its own seed;
- **emulator**: the real thing, ``locust --find-capacity`` against ``python -m emulator --max-num-seqs 8
  --step-ms 20 --step-ms-per-seq 0 --prefill-ms-per-token 0`` with 18 output tokens (the same 22.2
  requests/s at saturation, in engine steps: ``bench.queue_sim.StepQueue``), ``--emulator-runs`` times
  per SLO, the report's ``capacity_rps_ci`` against that truth.

Prints a JSON line per server and SLO: the truth, how often the interval held it, the median width of
the interval relative to the truth, the median error of the estimate, and how many levels a search ran.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench.queue_sim import Queue, StepQueue, search, true_capacity
from users.calibration.harness import ROOT, Harness

# (TTFT limit in seconds, target share)
SLOS = ((0.3, 0.95), (0.4, 0.95), (0.25, 0.9))
STEP = StepQueue(slots=8, step_s=0.02, tokens=18)


def held(interval: list | tuple, truth: float) -> bool:
    low, high = interval
    return (low or 0.0) <= truth and (high is None or truth <= high)


def line(server: str, ttft_s: float, target: float, level_s: float, truth: float, answers: list[dict]) -> dict:
    """The figures of one server and SLO over its searches (each ``{"rate", "ci", "levels"}``)."""
    bounded = [a for a in answers if a["ci"][1] is not None]
    return {
        "server": server,
        "slo": f"ttft_ms={ttft_s * 1000:g}",
        "target": target,
        "level_s": level_s,
        "truth_rps": round(truth, 2),
        "searches": len(answers),
        "held": sum(held(a["ci"], truth) for a in answers),
        "with_upper_bound": len(bounded),
        "median_relative_width": round(statistics.median((a["ci"][1] - (a["ci"][0] or 0)) / truth for a in bounded), 3)
        if bounded
        else None,
        "median_relative_error": round(statistics.median(abs(a["rate"] / truth - 1) for a in answers), 3),
        "median_levels": statistics.median(a["levels"] for a in answers),
    }


def simulated(runs: int, level_s: float, slos: tuple[tuple[float, float], ...]) -> None:
    queue = Queue()
    for ttft_s, target in slos:
        truth = true_capacity(queue, ttft_s, target)
        answers = []
        for seed in range(runs):
            answer = search(queue, ttft_s, target, level_s, seed)
            answers.append({"rate": answer.rate, "ci": answer.interval, "levels": answer.levels})
        print(json.dumps(line("simulated", ttft_s, target, level_s, truth, answers)), flush=True)


def emulator(runs: int, level_s: float, keep: str, slos: tuple[tuple[float, float], ...]) -> None:
    for ttft_s, target in slos:
        truth = true_capacity(STEP, ttft_s, target)
        answers = []
        for run in range(runs):
            with tempfile.TemporaryDirectory() as scratch:
                folder = os.path.join(keep, f"{ttft_s:g}_{target:g}_{run}") if keep else scratch
                os.makedirs(folder, exist_ok=True)
                started = time.monotonic()
                answers.append(emulator_search(folder, run, ttft_s, target, level_s))
                took = round(time.monotonic() - started)
                line_ = {"run": run, "truth_rps": round(truth, 2), **answers[-1], "seconds": took}
                print(json.dumps(line_), file=sys.stderr, flush=True)
        print(json.dumps(line("emulator", ttft_s, target, level_s, truth, answers)), flush=True)


def emulator_search(folder: str, run: int, ttft_s: float, target: float, level_s: float) -> dict:
    """One capacity search against the emulator set as STEP: its answer and how many levels it took."""
    server = f"--max-num-seqs {STEP.slots} --step-ms {STEP.step_s * 1000:g} --step-ms-per-seq 0"
    with Harness(
        folder, "emulator", [*server.split(), "--prefill-ms-per-token", "0", "--seed", str(run)], pin=True
    ) as h:
        prefix = os.path.join(folder, "capacity")
        load = f"-u 1 --max-tokens {STEP.tokens} --ignore-eos --input-tokens 32 --find-capacity --max-concurrency 64"
        slo = ["--slo", f"ttft_ms={ttft_s * 1000:g}", "--slo-attainment", str(target)]
        h.run([*load.split(), *slo, "--level-duration", str(level_s), "--seed", str(run)], timeout=3600, prefix=prefix)
    subprocess.run([sys.executable, "-m", "reports", prefix], cwd=ROOT, check=True, capture_output=True, timeout=600)
    with open(f"{prefix}_summary.json", encoding="utf-8") as f:
        summary = json.load(f)
    return {
        "rate": summary["capacity_rps"],
        "ci": summary["capacity_rps_ci"],
        "levels": len(summary.get("levels") or []),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="simulated searches per SLO")
    parser.add_argument("--emulator-runs", type=int, default=0, help="searches against the emulator per SLO")
    parser.add_argument("--level-duration", type=float, default=30.0)
    parser.add_argument("--slo", type=int, default=None, help="only the N-th SLO (0-based) of " + repr(SLOS))
    parser.add_argument("--keep", default="", help="keep each emulator run's CSVs and report under this folder")
    args = parser.parse_args()
    slos = SLOS if args.slo is None else (SLOS[args.slo],)
    if args.runs:
        simulated(args.runs, args.level_duration, slos)
    if args.emulator_runs:
        emulator(args.emulator_runs, args.level_duration, args.keep, slos)


if __name__ == "__main__":
    main()
