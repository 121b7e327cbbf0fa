"""The steady state: requests sent after the load reached its target and before the drain."""

from __future__ import annotations

import json

import pandas as pd

from tests.unit.reports.test_load import HEADER, ROW, report

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
            # TTFT: 2 s cold, 1 s warm
            rows.append(line.replace(",0.1,", f",{e2e - 1.0},", 1))
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
    # every user spawned at 3 s; the last send
    assert start == 3.0 and end == max(starts)
    # sent in the window, however long they ran
    inside = [s for s in starts if 3.0 <= s <= end]
    assert summary["steady_requests"] == len(inside)
    steady = summary["steady"]
    # no cold first request
    assert steady["completed"] == len(inside) and steady["median_ttft_ms"] == 1000.0
    # ... which the whole run's figures include
    assert summary["p99_ttft_ms"] > 1000.0
    assert "steady.median_ttft_ms<=1000: 1000" in proc.stdout
    assert "Steady state" in (tmp_path / "r_report.html").read_text()


def test_a_run_without_a_spawn_history_or_a_schedule_claims_no_steady_state(tmp_path):
    rows, _ = closed_loop_rows()
    (tmp_path / "r_requests.csv").write_text(HEADER + rows)
    assert report(str(tmp_path / "r")).returncode == 0
    summary = json.loads((tmp_path / "r_summary.json").read_text())
    assert "steady" not in summary and "steady_window_s" not in summary


def mixed_lengths(seconds: float, users: int = 64) -> tuple[pd.DataFrame, float]:
    """A closed loop whose users alternate a short request (1 s, 10 tokens) and a long one (20 s, 400
    tokens), each user from its own phase of that 21 s cycle: a constant load whose true output rate is
    users × 410 tokens / 21 s."""
    rows = []
    for user in range(users):
        phase = 21.0 * user / users
        t, long = (0.0, True) if phase < 20.0 else (0.0, False)
        first_e2e = 20.0 - phase if phase < 20.0 else 21.0 - phase
        while t <= seconds:
            e2e, tokens = (20.0, 400) if long else (1.0, 10)
            # the first request is the rest of its cycle's
            e2e = first_e2e if t == 0.0 else e2e
            tokens = max(2, round(tokens * e2e / (20.0 if long else 1.0)))
            rows.append(
                {
                    "request_id": f"u{user}-{len(rows)}",
                    "start_time": 1.7e9 + t,
                    "success": True,
                    "cancelled": False,
                    "ttft_s": 0.05,
                    "e2e_s": e2e,
                    "tpot_s": (e2e - 0.05) / (tokens - 1),
                    "itl_s": "",
                    "decode_tps": tokens / e2e,
                    "prompt_tokens": 100,
                    "cached_tokens": 0,
                    "output_tokens": tokens,
                    "warm_cache": False,
                }
            )
            t, long = t + e2e, not long
    return pd.DataFrame(rows), users * 410 / 21.0


def test_the_steady_state_is_not_biased_to_short_requests():
    from reports.metrics import steady_summary, summarize

    rows, truth = mixed_lengths(60.0)
    users = pd.DataFrame({"time_s": [0.0, 2.0], "users": [64, 64]})
    found = steady_summary(rows, users, None, None, 0.95)
    steady = found["steady"]
    # every request sent in the window counts, the long ones too (keeping those that also ended in it
    # would keep the short ones: a median E2E of 1 s)
    assert steady["completed"] == found["steady_requests"] and steady["median_e2el_ms"] > 5000.0
    assert steady["p90_e2el_ms"] == 20000.0
    # throughput from the tokens that arrived inside the window: the true rate, within a few percent
    assert abs(steady["output_throughput"] / truth - 1) < 0.05, (steady["output_throughput"], truth)
    whole = summarize(rows)
    assert abs(steady["output_throughput"] / whole["output_throughput"] - 1) < 0.15
    low, high = steady["output_throughput_ci"]
    assert low <= truth <= high
