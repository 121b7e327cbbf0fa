"""The steady state: requests sent after the load reached its target and ended before the drain."""

from __future__ import annotations

import json

from tests.unit.test_report_inputs import HEADER, ROW, report

USERS = 4


def closed_loop_rows() -> tuple[str, list[float]]:
    """4 users spawned one a second, each request 2 s (the first ones 1 s slower: a cold server), the last
    send at t0 + 20: a ramp-up, a plateau and a drain."""
    rows, starts = [], []
    for user in range(USERS):
        t, first = float(user), True
        while t <= 20.0:
            e2e = 3.0 if first else 2.0
            line = ROW.format(i=len(rows), t=1.7e9 + t).replace(",1.1,", f",{e2e},", 1)
            rows.append(line.replace(",0.1,", f",{e2e - 1.0},", 1))  # TTFT: 2 s cold, 1 s warm
            starts.append(t)
            t, first = t + e2e, False
    return "".join(rows), starts


def test_the_steady_figures_leave_out_the_ramp_up_and_the_drain(tmp_path):
    rows, starts = closed_loop_rows()
    (tmp_path / "r_requests.csv").write_text(HEADER + rows)
    history = "Timestamp,User Count,Type,Name,Requests/s\n" + "".join(
        f"{int(1.7e9) + s},{min(s + 1, USERS)},,Aggregated,0\n" for s in range(0, 24)
    )
    (tmp_path / "r_stats_history.csv").write_text(history)
    proc = report(str(tmp_path / "r"), "--check", "steady.median_ttft_ms<=1000")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((tmp_path / "r_summary.json").read_text())
    start, end = summary["steady_window_s"]
    assert start == 3.0 and end == max(starts)  # every user spawned at 3 s; the last send
    inside = [s for s in starts if s >= 3.0 and s + 2.0 <= end]
    assert summary["steady_requests"] == len(inside)
    steady = summary["steady"]
    assert steady["completed"] == len(inside) and steady["median_ttft_ms"] == 1000.0  # no cold first request
    assert summary["p99_ttft_ms"] > 1000.0  # ... which the whole run's figures include
    assert "steady.median_ttft_ms<=1000: 1000" in proc.stdout
    assert "Steady state" in (tmp_path / "r_report.html").read_text()


def test_a_run_without_a_spawn_history_or_a_schedule_claims_no_steady_state(tmp_path):
    rows, _ = closed_loop_rows()
    (tmp_path / "r_requests.csv").write_text(HEADER + rows)
    assert report(str(tmp_path / "r")).returncode == 0
    summary = json.loads((tmp_path / "r_summary.json").read_text())
    assert "steady" not in summary and "steady_window_s" not in summary
