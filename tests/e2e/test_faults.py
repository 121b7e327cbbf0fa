"""Faults: every request gets exactly one row and one Locust event; each fault is a failure with its reason."""

from __future__ import annotations

import csv

import pytest

from tests.procs import read_rows, run_locust

FAST = ("--step-ms", "5", "--step-ms-per-seq", "0.02", "--eos-prob", "0")

# fault kind -> the start of the error it must produce in the row
EXPECTED = {
    "http_500": "HTTP 500 Internal Server Error: injected fault: internal error",
    "http_429": "HTTP 429 Too Many Requests: injected fault: too many requests",
    "refuse": "connection closed before the response headers",
    "reset": "connection broken mid-response: connection reset by peer",
    "malformed": "malformed JSON in stream",
    "error_frame": "server error in stream: injected fault: engine error",
    "no_done": "stream ended without [DONE]",
    "empty": "stream carried no tokens",
    "stall": "stalled: no data for 1 s",
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_each_fault_is_recorded_once_with_its_reason(emulator_factory, tmp_path, kind):
    emu = emulator_factory(*FAST, "--fault", f"{kind}=0.25", "--seed", "3")
    prefix = tmp_path / kind
    run = run_locust(
        "--headless",
        "-u",
        "8",
        "-r",
        "8",
        "-n",
        "60",
        "-H",
        emu.url,
        "--max-tokens",
        "6",
        "--input-tokens",
        "64",
        "--stream-timeout",
        "1",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    # failures make Locust's exit code non-zero (--exit-code-on-error)
    assert run.returncode == 1, run
    assert "Traceback" not in run.output
    stats = emu.stats()
    injected = stats["faults_injected"].get(kind, 0)
    assert injected > 0
    rows = read_rows(prefix)
    failed = [r for r in rows if r["success"] == "false"]
    # a request refused unanswered on a kept connection is sent once more on a new one, on the record
    # (column resent, the first attempt's error beside it): the server's receipts are the rows plus those
    resent = [r for r in rows if r["resent"] == "1"]
    assert all(r["resent"] == "0" and not r["resent_error"] for r in rows if r not in resent)
    assert all(r["resent_error"].startswith(EXPECTED["refuse"]) for r in resent)
    # one row per request
    assert len(rows) == 60 and stats["by_path"]["/v1/chat/completions"] == 60 + len(resent)
    # one failure per injected fault that was not resent
    assert len(failed) == injected - len(resent)
    assert kind == "refuse" or not resent
    assert all(r["error"].startswith(EXPECTED[kind]) for r in failed), {r["error"] for r in failed}
    clean = [r for r in rows if r["success"] == "true"]
    truth = {t["id"]: t for t in emu.truth() if t.get("status") == "ok"}
    assert len(clean) == 60 - len(failed)
    # the clean requests are unaffected
    for r in clean:
        assert int(r["output_tokens"]) == 6 == truth[r["request_id"]]["output_tokens"]
    if kind in ("reset", "malformed", "error_frame", "no_done", "stall"):
        # a request that failed partway keeps its TTFT
        assert all(r["ttft_s"] for r in failed)
    with open(f"{prefix}_stats.csv", newline="") as f:
        post = next(r for r in csv.DictReader(f) if r["Type"] == "POST")
    assert int(post["Request Count"]) == 60 and int(post["Failure Count"]) == len(failed)
    with open(f"{prefix}_failures.csv", newline="") as f:
        failures = list(csv.DictReader(f))
    assert sum(int(r["Occurrences"]) for r in failures) == len(failed)


@pytest.mark.timeout(120)
def test_request_timeout_bounds_a_whole_request(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "100", "--step-ms-per-seq", "0", "--eos-prob", "0")
    prefix = tmp_path / "rt"
    run = run_locust(
        "--headless",
        "-u",
        "2",
        "-n",
        "2",
        "-H",
        emu.url,
        "--max-tokens",
        "50",
        "--input-tokens",
        "32",
        "--request-timeout",
        "1",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 1
    rows = read_rows(prefix)
    assert len(rows) == 2 and all(r["error"] == "request timed out after 1 s" for r in rows)
    assert all(0 < int(r["output_tokens"]) < 50 for r in rows)


@pytest.mark.timeout(120)
def test_max_fail_ratio_stops_the_run_early(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST, "--fault", "http_500=0.6")
    prefix = tmp_path / "mf"
    run = run_locust(
        "--headless",
        "-u",
        "4",
        "-n",
        "100000",
        "-H",
        emu.url,
        "--max-tokens",
        "4",
        "--input-tokens",
        "32",
        "--max-fail-ratio",
        "0.2",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=90,
    )
    assert run.returncode == 1
    assert "exceeds --max-fail-ratio 0.2: stopping the run" in run.output
    assert 20 <= len(read_rows(prefix)) < 5000


@pytest.mark.timeout(60)
def test_failures_without_a_response_do_not_hammer_the_server(emulator_factory, tmp_path):
    # every generation request is refused before its headers; the user pauses 50 ms after each
    emu = emulator_factory("--fault", "refuse=1.0")
    prefix = tmp_path / "dead"
    run = run_locust(
        "--headless",
        "-u",
        "4",
        "-r",
        "4",
        "-t",
        "2s",
        "-H",
        emu.url,
        "--max-tokens",
        "4",
        "--input-tokens",
        "32",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 1
    rows = read_rows(prefix)
    failed = [r for r in rows if r["success"] == "false" and r["cancelled"] != "true"]
    # no response at all: what the pause is for
    assert failed and all(r["status"] == "" for r in failed)
    # each refused on the new connection the one before it left: never resent
    assert all(r["error"] == EXPECTED["refuse"] for r in failed)
    # (one stopped mid-connect has a row only)
    assert emu.stats()["by_path"]["/v1/chat/completions"] <= len(rows)
    # 4 users x 2 s / 50 ms is at most ~160 requests; without the pause it is thousands
    assert 8 <= len(rows) <= 200, len(rows)
