"""Open-loop load against the emulator: arrivals reach the server on the seeded schedule, at a global
rate across workers, under a concurrency cap, in stages; bad input gets one line.

The schedule is drawn from --seed, so a test knows each request's due time (the rows carry it);
the emulator's log has the kernel's receive time of every request: the two are compared."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.procs import ROOT, TTFT_ERROR_FLOOR_S, read_rows, run_locust, ttft_errors

FAST = ("--step-ms", "5", "--step-ms-per-seq", "0.02", "--prefill-ms-per-token", "0.002", "--eos-prob", "0")
SIZES = ("--max-tokens", "8", "--input-tokens", "48", "--metrics-interval", "0", "--only-summary")


def received(emu, rows) -> np.ndarray:
    """The emulator's receive (unix) times of the rows' requests, in the rows' due order."""
    truth = {t["id"]: t for t in emu.truth()}
    ordered = sorted(rows, key=lambda r: float(r["scheduled_time"]))
    return np.array([truth[r["request_id"]]["received_wall"] for r in ordered])


def due_times(rows) -> np.ndarray:
    return np.sort(np.array([float(r["scheduled_time"]) for r in rows]))


@pytest.mark.timeout(120)
def test_requests_reach_the_server_when_due_and_n_is_exact(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    prefix = tmp_path / "rate"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-r",
        "1",
        "-n",
        "100",
        "-H",
        emu.url,
        "--request-rate",
        "40",
        "--csv",
        str(prefix),
        *SIZES,
    )
    assert run.returncode == 0, run
    assert "open loop: 100 requests" in run.output and "schedule slipped" not in run.output
    rows = read_rows(prefix)
    assert len(rows) == 100 == emu.stats()["by_path"]["/v1/chat/completions"]
    assert all(r["success"] == "true" and r["stage"] == "" and float(r["queue_s"]) == 0.0 for r in rows)
    due, got = due_times(rows), received(emu, rows)
    # each request reached the server after it was due (it is sent once due: by design), and its gap to
    # the next follows the schedule's; medians, since a busy machine may stall a send now and then
    # (how late sends are is the benchmark's to show: bench/open_loop.py)
    late = got - due
    assert late.min() > 0 and np.median(late) < 0.005, (late.min(), np.median(late))
    assert np.median(np.abs(np.diff(got) - np.diff(due))) < 0.001
    assert float(np.median([float(r["schedule_lag_s"]) for r in rows])) < 0.005
    # TTFT still counts from the send
    assert ttft_errors(rows, emu.truth())[0] >= TTFT_ERROR_FLOOR_S


@pytest.mark.timeout(120)
def test_three_workers_keep_one_evenly_spaced_process_at_the_global_rate(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    prefix = tmp_path / "dist"
    run = run_locust(
        "--headless",
        "--processes",
        "3",
        "-u",
        "3",
        "-r",
        "3",
        "-n",
        "90",
        "-H",
        emu.url,
        "--request-rate",
        "30",
        "--burstiness",
        "inf",
        "--csv",
        str(prefix),
        *SIZES,
        timeout=150,
    )
    assert run.returncode == 0, run
    rows = read_rows(prefix)
    assert len(rows) == 90 == emu.stats()["by_path"]["/v1/chat/completions"]
    assert len({r["worker"] for r in rows}) == 3
    gaps = np.diff(received(emu, rows))
    # one process at 30 req/s, evenly spaced, across the three workers; three workers drawing 10 req/s
    # each (thinning) would interleave with random phases: gaps anywhere from 0 to 100 ms
    assert gaps.mean() == pytest.approx(1 / 30, rel=0.05)
    # robust to a stalled send or two
    spread = np.median(np.abs(gaps - np.median(gaps))) / np.median(gaps)
    assert spread < 0.1, spread


@pytest.mark.timeout(120)
def test_the_cap_holds_requests_back_and_their_wait_is_queue_time(emulator_factory, tmp_path):
    # 8 tokens: ~0.4 s each
    emu = emulator_factory("--step-ms", "50", "--step-ms-per-seq", "0", "--eos-prob", "0")
    prefix = tmp_path / "cap"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-r",
        "1",
        "-n",
        "20",
        "-H",
        emu.url,
        "--request-rate",
        "20",
        "--burstiness",
        "inf",
        "--max-concurrency",
        "2",
        "--csv",
        str(prefix),
        *SIZES,
    )
    assert run.returncode == 0, run
    rows = read_rows(prefix)
    truth = {t["id"]: t for t in emu.truth()}
    spans = sorted(
        (
            truth[r["request_id"]]["received_wall"],
            truth[r["request_id"]]["received_wall"] + truth[r["request_id"]]["e2e_s"],
        )
        for r in rows
    )
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    # never more than the cap in flight at the server
    assert overlap <= 2
    queued = [float(r["queue_s"]) for r in rows]
    assert max(queued) > 1.0 and sorted(queued)[:2] == pytest.approx([0.0, 0.0], abs=0.01)
    # E2E counts from the send; the queue is reported apart and in e2el_including_queue
    assert float(np.median([float(r["e2e_s"]) for r in rows])) < 1.0
    # the scheduler released every arrival on time: waiting for the cap is not lag
    # lag excludes the queue's seconds
    assert max(float(r["schedule_lag_s"]) for r in rows) < 1.0 < max(queued)


@pytest.mark.timeout(120)
def test_stages_reach_the_server_in_order_and_end_the_run(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    prefix = tmp_path / "stages"
    # no -n, no -t: the run ends with its last stage
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-r",
        "1",
        "-H",
        emu.url,
        "--stages",
        "1s:10,1s:30",
        "--burstiness",
        "inf",
        "--csv",
        str(prefix),
        *SIZES,
        "--metrics-interval",
        "0.5",
        timeout=60,
    )
    assert run.returncode == 0, run
    rows = read_rows(prefix)
    stages = [r["stage"] for r in sorted(rows, key=lambda r: float(r["scheduled_time"]))]
    assert stages == sorted(stages) and stages.count("1") == 10 and 29 <= stages.count("2") <= 30
    truth = {t["id"]: t for t in emu.truth()}
    last_1 = max(truth[r["request_id"]]["received_wall"] for r in rows if r["stage"] == "1")
    first_2 = min(truth[r["request_id"]]["received_wall"] for r in rows if r["stage"] == "2")
    assert last_1 < first_2
    # the run ended when the schedule did, cutting nothing
    assert all(r["success"] == "true" for r in rows)
    report = subprocess.run(
        [sys.executable, "-m", "reports", str(prefix)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert report.returncode == 0, report.stderr
    per_stage = json.loads((tmp_path / "stages_summary.json").read_text())["stages"]
    assert per_stage["1"]["completed"] == 10 and per_stage["2"]["completed"] == stages.count("2")
    assert all(s["server_requests"] > 0 and s["server_mean_ttft_ms"] > 0 for s in per_stage.values())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--request-rate", "0"), "--request-rate must be positive, got 0"),
        (("--request-rate", "5", "--burstiness", "-1"), "--burstiness must be positive, got -1"),
        (("--request-rate", "5", "--max-concurrency", "0"), "--max-concurrency must be at least 1, got 0"),
        (("--stages", "30s"), "--stages takes DURATION:RATE"),
        (("--request-rate", "5", "--stages", "1s:5"), "--request-rate and --stages both set the arrival rate"),
        (("--ramp-up", "linear", "--ramp-up-start", "1"), "--ramp-up needs --ramp-up-start and --ramp-up-end"),
        (("--max-concurrency", "4"), "--max-concurrency caps an open loop"),
        (("--stages", "10s:5,10s:4u"), "--stages mixes rates and user counts"),
        (("--request-rate", "5", "--stages", "2s:2u"), "--stages with user counts is a closed loop in steps"),
    ],
)
def test_bad_open_loop_input_gets_one_line_before_any_request(args, message, emulator_factory):
    emu = emulator_factory()
    run = run_locust("--headless", "-u", "1", "-n", "5", "-H", emu.url, *args, timeout=60)
    assert run.returncode != 0
    assert message in run.output and "Traceback" not in run.output
    assert "/v1/chat/completions" not in emu.stats()["by_path"]


@pytest.mark.timeout(120)
def test_a_linear_ramp_climbs_over_the_runs_requests(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    prefix = tmp_path / "ramp"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-r",
        "1",
        "-n",
        "60",
        "-H",
        emu.url,
        "--ramp-up",
        "linear",
        "--ramp-up-start",
        "5",
        "--ramp-up-end",
        "60",
        "--burstiness",
        "inf",
        "--csv",
        str(prefix),
        *SIZES,
    )
    assert run.returncode == 0, run
    rows = read_rows(prefix)
    gaps = np.diff(received(emu, rows))
    assert len(rows) == 60
    # request i is due 1 / rate(i) after the one before: rate(1) is 5.9 req/s, rate(59) 60
    # (medians of a few gaps each, which a stalled send cannot move)
    first = 1 / (5 + 55 * np.arange(1, 6) / 59)
    assert np.median(gaps[:5]) == pytest.approx(np.median(first), rel=0.1)
    assert np.median(gaps[-10:]) == pytest.approx(np.median(1 / (5 + 55 * np.arange(50, 60) / 59)), rel=0.1)


@pytest.mark.timeout(120)
def test_stages_of_user_counts_run_on_locusts_load_shape(emulator_factory, tmp_path):
    # 8 tokens: ~0.16 s
    emu = emulator_factory("--step-ms", "20", "--step-ms-per-seq", "0", "--eos-prob", "0")
    prefix = tmp_path / "users"
    run = run_locust("--headless", "-H", emu.url, "--stages", "2s:2u,2s:6u", "--csv", str(prefix), *SIZES)
    assert run.returncode == 0, run
    assert "Shape test updating to 2 users" in run.output and "Shape test updating to 6 users" in run.output
    rows = read_rows(prefix)
    done = [r for r in rows if r["cancelled"] == "false"]
    assert {r["stage"] for r in done} == {"1", "2"}
    # a closed loop: no schedule
    assert all(r["scheduled_time"] == "" for r in rows)
    truth = {t["id"]: t for t in emu.truth()}

    def concurrency(stage: str) -> int:
        spans = [
            (
                truth[r["request_id"]]["received_wall"],
                truth[r["request_id"]]["received_wall"] + truth[r["request_id"]]["e2e_s"],
            )
            for r in done
            if r["stage"] == stage
        ]
        return max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)

    assert concurrency("1") <= 2 < concurrency("2") <= 6
    # the shape ended the run after its 4 s, long before -t
    starts = [float(r["start_time"]) for r in rows]
    assert max(starts) - min(starts) < 6
