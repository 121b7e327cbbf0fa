"""The seed scenario, scaled down, against real vLLM on CPU."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

import pytest
import yaml

from tests.procs import ROOT, run_locust

pytestmark = pytest.mark.vllm


def ttft_histogram(text: str) -> tuple[float, float]:
    total = count = 0.0
    for line in text.splitlines():
        m = re.match(r"vllm:time_to_first_token_seconds_(sum|count)\{[^}]*\} ([0-9.e+-]+)", line)
        if m:
            if m.group(1) == "sum":
                total += float(m.group(2))
            else:
                count += float(m.group(2))
    return total, count


@pytest.mark.timeout(600)
def test_seed_scenario_scaled_down(vllm_server, tmp_path):
    prefix = tmp_path / "seed"
    before = ttft_histogram(vllm_server.get_text("/metrics"))
    run = run_locust(
        "--headless",
        "-u",
        "16",
        "-r",
        "16",
        "-n",
        "64",
        "-H",
        vllm_server.url,
        "--input-tokens",
        "1024",
        "--prefix-tokens",
        "768",
        "--max-tokens",
        "64",
        "--ignore-eos",
        "--metrics-interval",
        "1",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=400,
    )
    assert run.returncode == 0, run
    assert "Traceback" not in run.output
    after = ttft_histogram(vllm_server.get_text("/metrics"))
    with open(f"{prefix}_requests.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 64 and all(r["success"] == "true" for r in rows)
    # token counts are the server's usage: exact prompt sizing through vLLM's /tokenize, and ignore_eos
    assert all(r["usage_source"] == "server" for r in rows)
    assert all(int(r["prompt_tokens"]) == 1024 and int(r["output_tokens"]) == 64 for r in rows)
    hits = [r for r in rows if int(r["cached_tokens"]) > 0]
    # at most the first concurrent batch misses
    assert len(hits) >= 64 - 16
    # the prefix, in whole 32-token blocks
    assert all(int(r["cached_tokens"]) >= 768 - 32 for r in hits)
    # the server's own hit rate (Δhits / Δqueries from /metrics) equals the per-request sum within 1%
    with open(f"{prefix}_server_metrics.csv", newline="") as f:
        series = list(csv.DictReader(f))
    dq = float(series[-1]["prefix_cache_queries_total"]) - float(series[0]["prefix_cache_queries_total"])
    dh = float(series[-1]["prefix_cache_hits_total"]) - float(series[0]["prefix_cache_hits_total"])
    usage_rate = sum(int(r["cached_tokens"]) for r in rows) / sum(int(r["prompt_tokens"]) for r in rows)
    assert dh / dq == pytest.approx(usage_rate, rel=0.01)
    # the client's TTFT agrees with vLLM's own histogram for the same 64 requests
    server_mean = (after[0] - before[0]) / (after[1] - before[1])
    assert after[1] - before[1] == 64
    client_mean = sum(float(r["ttft_s"]) for r in rows) / len(rows)
    print(f"mean TTFT: client {client_mean * 1e3:.1f} ms, vLLM {server_mean * 1e3:.1f} ms")
    assert server_mean <= client_mean <= server_mean + 0.030
    # and the report builds from this run
    proc = subprocess.run(
        [sys.executable, "-m", "reports", str(prefix)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "seed_summary.json").read_text())
    assert summary["completed"] == 64 and summary["prefix_cache_hit_rate_source"] == "server_metrics"
    assert summary["prefix_cache_hit_rate"] == pytest.approx(usage_rate, rel=0.01)


@pytest.mark.timeout(600)
def test_a_replayed_trace_hits_vllms_prefix_cache_as_the_rows_say(vllm_server, tmp_path):
    from scheduler.trace import load_trace
    from tools.make_trace import main as make_trace

    path = str(tmp_path / "trace.jsonl")
    assert (
        make_trace(
            [
                path,
                "--requests",
                "30",
                "--rate",
                "8",
                "--block-tokens",
                "64",
                "--prefixes",
                "4",
                "--output-tokens",
                "8",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    trace = load_trace(path, block_tokens=64)
    prefix = tmp_path / "trace"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-r",
        "1",
        "-H",
        vllm_server.url,
        "--trace",
        path,
        "--trace-block-tokens",
        "64",
        "--endpoint",
        "completions",
        "--reset-prefix-cache",
        "--metrics-interval",
        "1",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=300,
    )
    assert run.returncode == 0, run
    with open(f"{prefix}_requests.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(int(r["trace_index"]) for r in rows) == list(range(30)) and all(r["success"] == "true" for r in rows)
    # exactly the trace's lengths, through vLLM's own tokenizer and ignore_eos
    for r in rows:
        req = trace.requests[int(r["trace_index"])]
        assert (int(r["prompt_tokens"]), int(r["output_tokens"])) == (req.input_length, req.output_length)
        # never more than the trace shares
        assert int(r["cached_tokens"]) <= int(r["ideal_cached_tokens"])
    cached = sum(int(r["cached_tokens"]) for r in rows)
    assert cached > 0.5 * sum(int(r["ideal_cached_tokens"]) for r in rows)
    # vLLM's own counters agree with the rows' cached_tokens
    with open(f"{prefix}_server_metrics.csv", newline="") as f:
        series = list(csv.DictReader(f))
    dq = float(series[-1]["prefix_cache_queries_total"]) - float(series[0]["prefix_cache_queries_total"])
    dh = float(series[-1]["prefix_cache_hits_total"]) - float(series[0]["prefix_cache_hits_total"])
    assert dq == sum(int(r["prompt_tokens"]) for r in rows)
    assert dh == cached


@pytest.mark.timeout(600)
def test_where_the_time_went_on_vllm(vllm_server, tmp_path):
    prefix = tmp_path / "split"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-r",
        "1",
        "-n",
        "24",
        "-H",
        vllm_server.url,
        "--input-tokens",
        "1024",
        "--max-tokens",
        "16",
        "--ignore-eos",
        "--metrics-interval",
        "600",
        "--seed",
        "11",
        "--reset-prefix-cache",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=300,
    )
    assert run.returncode == 0, run
    proc = subprocess.run(
        [sys.executable, "-m", "reports", str(prefix)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    s = json.loads((tmp_path / "split_summary.json").read_text())
    assert s["server_requests"] == 24 and s["server_metrics_missing"] == []
    print(
        f"client TTFT {s['mean_ttft_ms']:.2f} ms, server {s['server_mean_ttft_ms']:.2f} (queue "
        f"{s['server_mean_queue_ms']:.2f}, prefill {s['server_mean_prefill_ms']:.2f}), client - server "
        f"{s['client_minus_server_ttft_ms']:.2f} ms; e2e client - server {s['client_minus_server_e2el_ms']:.2f} ms"
    )
    # the engine's queue and prefill lie inside the server's TTFT (which also counts its front end)
    assert s["server_mean_queue_ms"] + s["server_mean_prefill_ms"] <= s["server_mean_ttft_ms"] * 1.05
    assert 0 <= s["client_minus_server_ttft_ms"] <= 5.0


@pytest.mark.timeout(600)
def test_the_prefix_caches_speed_up_on_vllm_and_vllms_own_counters_agree(vllm_server, tmp_path):
    prefix = tmp_path / "speedup"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-H",
        vllm_server.url,
        "--sweep",
        "prefix-tokens:0,960",
        "--input-tokens",
        "1024",
        "--max-concurrency",
        "1",
        "--level-requests",
        "12",
        "--max-tokens",
        "4",
        "--ignore-eos",
        "--metrics-interval",
        "1",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=400,
    )
    assert run.returncode == 0, run
    assert "Traceback" not in run.output
    proc = subprocess.run(
        [sys.executable, "-m", "reports", str(prefix)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "speedup_summary.json").read_text())
    found = summary["prefix_cache_speedup"]
    print("vLLM TTFT p50 speed-up:", found["median_ttft_ms"], found["median_ttft_ms_ci"])
    # faster, and surely so
    assert found["prefix_tokens"] == 960 and found["median_ttft_ms_ci"][0] > 1
    unshared, shared = summary["levels"]
    assert unshared["cache_handling"] == shared["cache_handling"] == "reset"
    # vLLM's own counters (Δhits / Δqueries between the scrapes at each level's bounds): none, then most
    assert unshared["server_prefix_cache_hit_rate"] == 0
    assert shared["server_prefix_cache_hit_rate"] > 0.8


@pytest.mark.timeout(900)
def test_the_tuning_loop_turns_vllms_prefix_cache_on_and_off(vllm_server, tmp_path):
    # the shipped grid for this tier, cut to its two prefix-caching points (vllm_server: vLLM is set up)
    grid = yaml.safe_load((ROOT / "docker" / "tuning" / "vllm-cpu.yaml").read_text())
    grid["settings"]["max_num_batched_tokens"] = [2048]
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "tuning", str(tmp_path / "grid.yaml"), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=800,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    summary = json.loads((out / "tuning_summary.json").read_text())
    on, off = summary["points"]
    assert on["settings"]["enable_prefix_caching"] is True and off["settings"]["enable_prefix_caching"] is False
    # each point's server said it ran the point's setting (vllm:cache_config_info), else the point had failed
    assert on["status"] == off["status"] == "ok"
    # vLLM's own counters: no hit with the cache off
    assert off["figures"]["prefix_cache_hit_rate"] == 0
    assert on["figures"]["prefix_cache_hit_rate"] > 0.8
    (effect,) = summary["setting_effects"]["enable_prefix_caching"]
    print("vLLM hit rate on/off:", on["figures"]["prefix_cache_hit_rate"], off["figures"]["prefix_cache_hit_rate"])
    print(
        "vLLM, cache off over on: TTFT p50",
        effect["median_ttft_ms"],
        effect["median_ttft_ms_ci"],
        "mean",
        effect["mean_ttft_ms"],
        effect["mean_ttft_ms_ci"],
    )
    # TTFT slower with the cache off, and surely so
    assert effect["median_ttft_ms_ci"][0] > 1
    assert summary["best"]["name"] == on["name"]


@pytest.mark.timeout(300)
def test_the_responses_api_on_vllm_is_measured_as_chat(vllm_server, tmp_path):
    prefix = tmp_path / "responses"
    run = run_locust(
        "--headless",
        "-u",
        "2",
        "-r",
        "2",
        "-n",
        "8",
        "-H",
        vllm_server.url,
        "--endpoint",
        "responses",
        "--max-tokens",
        "8",
        "--ignore-eos",
        "--input-tokens",
        "256",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=240,
    )
    assert run.returncode == 0, run.output[-3000:]
    assert "Traceback" not in run.output
    with open(f"{prefix}_requests.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and all(r["success"] == "true" and r["request_id"].startswith("resp_") for r in rows)
    # the usage of response.completed; the prompt sized with the chat template, as vLLM applies it
    for r in rows:
        assert r["usage_source"] == "server" and int(r["output_tokens"]) == 8
        assert abs(int(r["prompt_tokens"]) - 256) <= 2, r["prompt_tokens"]
        assert 0 < float(r["ttft_s"]) <= float(r["e2e_s"])
