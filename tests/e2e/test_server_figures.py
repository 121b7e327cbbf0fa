"""Where the time went, against the emulator: the server's own figures (its /metrics histograms, vLLM's
names and buckets) as the suite computes them equal the emulator's ground truth, per run and per level,
and the client's share is what is left."""

from __future__ import annotations

import html
import json
import math
import subprocess
import sys
from bisect import bisect_left

import numpy as np
import pytest

from emulator.metrics import E2E_BUCKETS, TTFT_BUCKETS
from tests.procs import ROOT, read_rows, run_locust

# two sequences at a time and a prefill cost: requests queue, and every phase takes time
EMULATOR = ("--max-num-seqs", "2", "--step-ms", "4", "--step-ms-per-seq", "0.02", "--prefill-ms-per-token", "0.02")
LOAD = ("--input-tokens", "512", "--max-tokens", "12", "--ignore-eos", "--metrics-interval", "0.5")


def report(prefix) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "reports", str(prefix)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(open(f"{prefix}_summary.json").read())


def bucket_of(value: float, bounds: list[float]) -> tuple[float, float]:
    """The (lower, upper] bucket of a value, as Prometheus counts it."""
    i = bisect_left(bounds, value)
    return (bounds[i - 1] if i else 0.0), (bounds[i] if i < len(bounds) else bounds[-1])


def assert_within_bucket(reported_ms: float, values_s: list[float], q: float, bounds: list[float]) -> None:
    """The interpolated quantile lies in the bucket holding the true one (the ceil(q n)-th smallest)."""
    ordered = sorted(values_s)
    true = ordered[max(math.ceil(q * len(ordered)) - 1, 0)]
    low, high = bucket_of(true, bounds)
    assert low * 1e3 - 1e-9 <= reported_ms <= high * 1e3 + 1e-9, (q, reported_ms, true, low, high)


@pytest.mark.timeout(180)
def test_the_servers_figures_equal_the_emulators_truth_and_the_client_adds_its_share(emulator_factory, tmp_path):
    emu = emulator_factory(*EMULATOR)
    prefix = tmp_path / "split"
    run = run_locust(
        "--headless", "-u", "6", "-r", "6", "-n", "60", "-H", emu.url, *LOAD, "--csv", str(prefix), "--only-summary"
    )
    assert run.returncode == 0, run
    truth = [t for t in emu.truth() if t["status"] == "ok" or t.get("ttft_s") is not None]
    assert len(truth) == 60
    summary = report(prefix)
    assert summary["server_requests"] == 60 and summary["server_metrics_missing"] == []
    ttft = [t["ttft_s"] for t in truth]
    queue = [t["queue_s"] for t in truth]
    prefill = [t["ttft_s"] - t["queue_s"] for t in truth]
    e2e = [t["e2e_s"] for t in truth]
    # the two slots made requests wait
    assert np.mean(queue) > 0.01
    for key, values in (("ttft", ttft), ("queue", queue), ("prefill", prefill), ("e2el", e2e)):
        # the mean is the histogram's sum / count: exact
        assert summary[f"server_mean_{key}_ms"] == pytest.approx(np.mean(values) * 1e3, rel=1e-6), key
        bounds = TTFT_BUCKETS if key == "ttft" else E2E_BUCKETS
        for q in (50, 90, 99):
            assert_within_bucket(summary[f"server_p{q}_{key}_ms"], values, q / 100, bounds)
    # the server's TTFT is its queue and its prefill; the client saw it a little later, never earlier
    # (the client's clock starts before its send; 21 us: the two stamps' conversion error)
    assert summary["server_mean_queue_ms"] + summary["server_mean_prefill_ms"] == pytest.approx(
        summary["server_mean_ttft_ms"], rel=1e-6
    )
    rows = read_rows(prefix)
    client = np.mean([float(r["ttft_s"]) for r in rows]) * 1e3
    assert summary["client_minus_server_ttft_ms"] == pytest.approx(client - np.mean(ttft) * 1e3, rel=1e-6)
    assert summary["client_minus_server_ttft_ms"] >= -0.021
    assert (tmp_path / "split_ttft_decomposition.png").exists()


@pytest.mark.timeout(180)
def test_each_levels_server_figures_count_that_levels_requests_only(emulator_factory, tmp_path):
    # no cache reset: a warm-up runs between the levels
    emu = emulator_factory(*EMULATOR, "--no-dev-mode")
    prefix = tmp_path / "levels"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-H",
        emu.url,
        *LOAD,
        "--sweep",
        "rate:5,15",
        "--level-requests",
        "30",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=150,
    )
    assert run.returncode == 0, run.output[-3000:]
    summary = report(prefix)
    rows = read_rows(prefix)
    truth = {t["id"]: t for t in emu.truth()}
    for level in summary["levels"]:
        mine = [r for r in rows if r["level"] == str(level["level"])]
        assert level["cache_handling"] == "warm-up" and level["server_requests"] == len(mine) == 30
        expected = np.mean([truth[r["request_id"]]["ttft_s"] for r in mine]) * 1e3
        assert level["server_mean_ttft_ms"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.timeout(180)
def test_calibrate_measures_the_clients_floor_before_the_run_and_the_report_shows_it(emulator_factory, tmp_path):
    emu = emulator_factory()
    prefix = tmp_path / "cal"
    run = run_locust(
        "--headless",
        "-u",
        "4",
        "-r",
        "4",
        "-n",
        "20",
        "-H",
        emu.url,
        "--input-tokens",
        "128",
        "--max-tokens",
        "16",
        "--calibrate",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 0, run
    assert "client floor at 4 streams of 128 -> 16 tokens" in run.output and "Traceback" not in run.output
    floor = json.loads((tmp_path / "cal_calibration.json").read_text())
    assert floor["users"] == 4 and floor["requests"] > 20
    # the client cannot see a token before the emulator wrote it (21 us: the stamps' conversion error)
    assert floor["client_floor_ttft_error_p50_ms"] >= -0.021 and floor["client_chunks_per_cpu_s"] > 0
    # the calibration had its own emulator: the run's server saw only the run
    assert len(emu.truth()) == 20
    summary = report(prefix)
    assert summary["client_floor_ttft_error_p99_ms"] == floor["client_floor_ttft_error_p99_ms"]
    assert "The client's floor on this machine" in html.unescape((tmp_path / "cal_report.html").read_text())


def test_calibrate_on_its_own_refuses_bad_input_in_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "users.calibrate", "-u", "0"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "must be at least 1" in proc.stderr
