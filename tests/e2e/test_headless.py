"""The seed scenario with real processes: a headless locust against the emulator."""

from __future__ import annotations

import csv
import json

import pytest

from reports.answers import figure
from tests.procs import TTFT_ERROR_FLOOR_S, read_rows, run_locust, ttft_errors

FAST = ("--step-ms", "10", "--step-ms-per-seq", "0.02", "--prefill-ms-per-token", "0.002")


@pytest.mark.timeout(240)
def test_seed_scenario_runs_exactly_n_requests_with_exact_ttft(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    prefix = tmp_path / "out" / "seed"
    run = run_locust(
        "--headless",
        "-u",
        "128",
        "-r",
        "16",
        "-n",
        "500",
        "-H",
        emu.url,
        "--max-tokens",
        "32",
        "--input-tokens",
        "256",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 0, run
    assert "Traceback" not in run.output
    stats = emu.stats()
    assert stats["by_path"].get("/v1/chat/completions") == 500
    rows = read_rows(prefix)
    assert len(rows) == 500
    assert all(r["success"] == "true" for r in rows)
    truth = {t["id"]: t for t in emu.truth()}
    assert len(truth) == 500
    errors = []
    for r in rows:
        t = truth[r["request_id"]]
        assert int(r["prompt_tokens"]) == t["prompt_tokens"]
        assert int(r["output_tokens"]) == t["output_tokens"]
        assert int(r["cached_tokens"]) == t["cached_tokens"]
        errors.append(float(r["ttft_s"]) - t["ttft_s"])
    errors.sort()
    assert errors == ttft_errors(rows, emu.truth())
    # the client's TTFT can only be later than the server's send time (to the conversion's resolution)
    assert errors[0] >= TTFT_ERROR_FLOOR_S, errors[:5]
    print("ttft error p50/p99/max ms:", errors[250] * 1e3, errors[495] * 1e3, errors[-1] * 1e3)
    assert errors[len(errors) // 2] < 0.003, errors[len(errors) // 2]
    assert errors[-1] < 0.025, errors[-5:]
    # Locust's own stats carry the request and its TTFT/TPOT rows
    with open(f"{prefix}_stats.csv", newline="") as f:
        stats_rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(f)}
    assert stats_rows[("POST", "/v1/chat/completions")]["Request Count"] == "500"
    assert stats_rows[("TTFT", "/v1/chat/completions")]["Request Count"] == "500"
    # ... and the Aggregated row is the requests', not an average of E2E, TTFT and TPOT together
    post, total = stats_rows[("POST", "/v1/chat/completions")], stats_rows[("", "Aggregated")]
    assert total["Request Count"] == "500" and total["Average Response Time"] == post["Average Response Time"]
    # the results, after Locust's tables: the answers and vllm bench serve's figures, from the summary
    block = run.output[run.output.index(" Results: seed ") :]
    summary = json.loads((tmp_path / "out" / "seed_summary.json").read_text())
    assert "500 requests completed in" in block and "Successful requests:                      500" in block
    assert f"Median TTFT (ms):                         {figure(summary, 'median_ttft_ms')}" in block
    print("ttft error p50/p99/max ms:", errors[250] * 1e3, errors[495] * 1e3, errors[-1] * 1e3)


@pytest.mark.timeout(120)
def test_completions_endpoint_and_run_time_together_with_n(emulator_factory, tmp_path):
    # 100 ms decode steps and 20 tokens: each request takes about 2 s, so when -t strikes at 3 s
    # every user has finished one request and has its second in flight
    emu = emulator_factory("--step-ms", "100", "--step-ms-per-seq", "0")
    prefix = tmp_path / "comp"
    run = run_locust(
        "--headless",
        "-u",
        "4",
        "-r",
        "4",
        "-n",
        "100000",
        "-t",
        "3s",
        "-H",
        emu.url,
        "--endpoint",
        "completions",
        "--max-tokens",
        "20",
        "--input-tokens",
        "64",
        "--ignore-eos",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    # cancelled requests are not failures
    assert run.returncode == 0, run
    rows = read_rows(prefix)
    by_path = emu.stats()["by_path"]
    assert by_path.get("/v1/completions") == len(rows) == 8
    assert "/v1/chat/completions" not in by_path
    done = [r for r in rows if r["success"] == "true"]
    cancelled = [r for r in rows if r["cancelled"] == "true"]
    assert len(done) == 4 and len(cancelled) == 4
    assert all(r["success"] == "false" and r["error"].startswith("cancelled:") for r in cancelled)
    assert all(r["cancelled"] == "false" for r in done)
    assert all(r["endpoint"] == "completions" and r["output_tokens"] == "20" for r in done)
    # a cancelled request keeps what it had received
    assert all(r["success"] == "false" and r["ttft_s"] and 0 < int(r["output_tokens"]) < 20 for r in cancelled)
    with open(f"{prefix}_stats.csv", newline="") as f:
        counts = {r["Type"]: int(r["Request Count"]) for r in csv.DictReader(f)}
    assert counts["POST"] == 4 and counts["CANCELLED"] == 4


@pytest.mark.timeout(120)
def test_openai_sdk_user_runs_only_when_named(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    common = (
        "--headless",
        "-u",
        "2",
        "-r",
        "2",
        "-H",
        emu.url,
        "--max-tokens",
        "8",
        "--input-tokens",
        "32",
        "--only-summary",
    )
    default = run_locust(*common, "-n", "4")
    assert default.returncode == 0 and '"VLLMUser": 2' in default.output and "OpenAISDKUser" not in default.output
    prefix = tmp_path / "sdk"
    run = run_locust(*common, "-n", "6", "--csv", str(prefix), "OpenAISDKUser")
    assert run.returncode == 0, run
    assert '"OpenAISDKUser": 2' in run.output
    rows = read_rows(prefix)
    truth = {t["id"]: t for t in emu.truth()}
    assert len(rows) == 6 and all(r["success"] == "true" for r in rows)
    for r in rows:
        assert int(r["output_tokens"]) == truth[r["request_id"]]["output_tokens"]
        assert float(r["ttft_s"]) >= truth[r["request_id"]]["ttft_s"]
