"""The benchmark scripts run and write their figures (performance itself is shown by running them)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.procs import ROOT


def bench(module: str, *args: str, timeout: float = 120) -> str:
    """Run ``python -m bench.MODULE ARGS``; its standard output (a failure shows its standard error)."""
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.timeout(120)
def test_report_speed_benchmark_runs_small():
    stdout = bench("report_speed", "--rows", "3000", "--gaps", "4")
    result = json.loads(stdout[stdout.index("{") :])
    assert result["rows"] == 3000 and result["report_seconds"] > 0 and result["peak_rss_mb"] > 0
    assert "bench_report.html" in result["outputs"] and "bench_overview.png" in result["outputs"]


@pytest.mark.timeout(120)
def test_client_overhead_benchmark_runs_small(tmp_path):
    out = tmp_path / "bench.json"
    stdout = bench(
        "client_overhead",
        "--seconds",
        "6",
        "--conditions",
        "8x500",
        "--users",
        "VLLMUser",
        "--timestamps",
        "kernel",
        "--json",
        str(out),
    )
    (result,) = json.loads(out.read_text())
    assert result["requests_compared"] > 0 and result["ttft_error_p50_ms"] is not None
    # the client cannot see a token before the server sends it
    assert result["ttft_error_p50_ms"] >= 0
    assert 0 < result["achieved_pct"] <= 101 and result["client_us_per_chunk"] > 0
    assert 0 < result["step_rate_pct"] <= 101 and 0 < result["occupancy_pct"] <= 101
    assert len(result["request_leg_p50_p99_ms"]) == 2 and len(result["token_leg_p50_p99_ms"]) == 2
    assert "| VLLMUser | kernel | 8 x 500 |" in stdout


@pytest.mark.timeout(120)
def test_open_loop_benchmark_runs_small(tmp_path):
    out = tmp_path / "bench.json"
    stdout = bench("open_loop", "--seconds", "2", "--conditions", "20xinf:8", "--json", str(out))
    (result,) = json.loads(out.read_text())
    assert result["requests"] == 40 and result["all_succeeded"]
    assert result["achieved_vs_scheduled_pct"] > 0 and result["lag_p99_ms"] >= 0 and result["gap_cv"] >= 0
    assert "| 20 | inf |" in stdout


@pytest.mark.timeout(120)
def test_exporter_benchmark_runs_small():
    result = json.loads(bench("exporter", "--requests", "200", "--gaps", "16"))
    assert result["observe_record_us"] > 0 and result["scrape_ms"] > 0 and result["page_bytes"] > 1000


@pytest.mark.timeout(300)
def test_capacity_benchmark_runs_small():
    stdout = bench("capacity", "--settings", "4:5:8", "--level-duration", "3", timeout=300)
    result = json.loads(stdout.splitlines()[-1])
    assert result["expected_rps"] == pytest.approx(86.81, abs=0.01) and result["capacity_rps"] > 0
    assert result["auto_levels"] >= 3


@pytest.mark.timeout(120)
@pytest.mark.timeout(300)
def test_tuning_capacity_benchmark_runs_small():
    # 3 s levels are too short to hold a point to 10% of the arithmetic: --tolerance 1 (the run is what is tested)
    lines = [
        json.loads(line)
        for line in bench(
            "tuning_capacity",
            "--max-num-seqs",
            "8",
            "--caching",
            "on",
            "--level-duration",
            "3",
            "--tolerance",
            "1",
            timeout=280,
        ).splitlines()
    ]
    (point, total) = lines
    assert point["point"] == "max_num_seqs-8_enable_prefix_caching-true" and point["capacity_rps"] > 0
    assert total["best"] == point["point"]


def test_trace_replay_benchmark_runs_small(tmp_path):
    out = tmp_path / "bench.json"
    bench("trace_replay", "--seconds", "2", "--rate", "20", "--json", str(out))
    result = json.loads(out.read_text())
    ample, small = result["replays"]
    assert ample["requests"] == small["requests"] == 40 and ample["exact_lengths"] and small["exact_lengths"]
    assert ample["ideal_hit_rate"] == small["ideal_hit_rate"] > 0 and ample["lag_p99_ms"] >= 0
    assert result["prompt_build_us_10_blocks"] > 0


@pytest.mark.timeout(120)
def test_capacity_truth_benchmark_runs_small():
    stdout = bench("capacity_truth", "--runs", "3", "--slo", "0", "--level-duration", "15")
    (result,) = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert result["server"] == "simulated" and result["searches"] == 3 and 0 <= result["held"] <= 3
    assert 17.5 < result["truth_rps"] < 18.1 and result["median_levels"] >= 2


@pytest.mark.timeout(120)
def test_sessions_benchmark_runs_small():
    stdout = bench("sessions", "--sessions", "60", "--think", "0.5", "--seconds", "2")
    result = json.loads(stdout[stdout.index("{") :])
    many = result["many"]
    assert many["sessions"] == 60 and many["later_turns"] > 0 and many["client_cpu_ms_per_turn"] > 0
    assert "kb_per_session" in result
