"""Sweeps and the capacity search against the emulator: levels in order, one summary row per level,
curves, the over-saturation stop, the capacity within 10% of the emulator's arithmetic, workers."""

from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
import time
import urllib.request

import pytest

from bench.capacity import emulator_capacity
from reports.keys import undocumented
from tests.e2e.test_prometheus import start_cluster
from tests.procs import ROOT, Drain, read_rows, run_locust, start_locust, terminate_all, wait_for_line

# a small, fast emulator: 4 sequences, 5 ms steps; 8 output tokens -> about 87 requests/s at most
EMULATOR = ("--step-ms", "5", "--max-num-seqs", "4")
CAPACITY = emulator_capacity(4, 5.0, 8, 64)
LOAD = ("--max-tokens", "8", "--input-tokens", "64", "--ignore-eos")


def run_cluster(emu, prefix, *sweep: str) -> Drain:
    """A headless master and two workers through a sweep; the master's output, once it exited 0."""
    (master, mout), *workers = start_cluster(2, "--headless", "-H", emu.url, *LOAD, *sweep, "--csv", str(prefix))
    try:
        master.wait(150)
    finally:
        terminate_all([(master, mout), *workers])
    assert master.returncode == 0, mout.text[-3000:]
    return mout


def levels_file(prefix) -> list[dict]:
    with open(f"{prefix}_levels.csv", newline="") as f:
        return list(csv.DictReader(f))


def report(prefix) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "reports", str(prefix)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    with open(f"{prefix}_summary.json", encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.timeout(180)
def test_a_rate_sweep_runs_its_levels_in_order_with_a_summary_row_and_curves_each(emulator_factory, tmp_path):
    emu = emulator_factory(*EMULATOR)
    prefix = tmp_path / "sweep"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-H",
        emu.url,
        *LOAD,
        "--sweep",
        "rate:10,30",
        "--level-requests",
        "40",
        "--slo",
        "ttft_ms=2000",
        "--slo-attainment",
        "0.9",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 0, run.output[-3000:]
    assert "Traceback" not in run.output
    levels = levels_file(prefix)
    assert [(lv["level"], lv["kind"], float(lv["value"])) for lv in levels] == [
        ("1", "rate", 10.0),
        ("2", "rate", 30.0),
    ]
    # the emulator allows it: every level starts cold
    assert {lv["cache"] for lv in levels} == {"reset"}
    rows = read_rows(prefix)
    # --level-requests, exactly
    assert sorted(r["level"] for r in rows) == ["1"] * 40 + ["2"] * 40
    # the server saw level 1 whole before level 2 began
    by_id = {t["id"]: t for t in emu.truth() if t.get("id")}
    first = max(by_id[r["request_id"]]["received_wall"] for r in rows if r["level"] == "1")
    second = min(by_id[r["request_id"]]["received_wall"] for r in rows if r["level"] == "2")
    assert first < second
    summary = report(prefix)
    assert [lv["level"] for lv in summary["levels"]] == [1, 2]
    for lv in summary["levels"]:
        for key in (
            "completed",
            "median_ttft_ms",
            "p99_tpot_ms",
            "request_throughput",
            "offered_rate",
            "achieved_rate",
            "slo_attainment",
            "slo_attainment_ci",
            "saturated",
            "goodput_tok_s",
        ):
            assert key in lv, key
        assert lv["completed"] == 40 and lv["slo_attainment"] == 1.0 and not lv["saturated"]
        low, high = lv["slo_attainment_ci"]
        # 40 of 40 at 95%: Wilson's interval starts near 0.91
        assert low < 1.0 == high
    assert summary["levels"][1]["offered_rate"] == 30.0
    assert (tmp_path / "sweep_latency_throughput.png").stat().st_size > 10_000


@pytest.mark.timeout(240)
def test_the_over_saturation_stop_ends_a_level_above_capacity_and_not_one_below(emulator_factory, tmp_path):
    emu = emulator_factory(*EMULATOR)
    prefix = tmp_path / "stop"
    below, above = round(0.45 * CAPACITY), round(2.3 * CAPACITY)
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-H",
        emu.url,
        *LOAD,
        "--sweep",
        f"rate:{below},{above},{3 * above}",
        "--level-duration",
        "25",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=220,
    )
    assert run.returncode == 0, run.output[-3000:]
    levels = levels_file(prefix)
    # and the sweep went no higher
    assert [lv["saturated"] for lv in levels] == ["False", "True"]
    stopped = levels[1]
    # cut off within 30 s of its start
    assert float(stopped["send_end"]) - float(stopped["start"]) < 30
    assert "past saturation" in run.output


@pytest.mark.timeout(300)
def test_find_capacity_lands_within_10_percent_of_the_emulators_arithmetic(emulator_factory, tmp_path):
    emu = emulator_factory(*EMULATOR)
    prefix = tmp_path / "capacity"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-H",
        emu.url,
        *LOAD,
        "--find-capacity",
        "--slo",
        "ttft_ms=2000",
        "--slo-attainment",
        "0.9",
        "--level-duration",
        "12",
        "--max-concurrency",
        "32",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=280,
    )
    assert run.returncode == 0, run.output[-3000:]
    said = [line for line in run.output.splitlines() if "Capacity within ttft_ms=2000 for 90% of requests:" in line]
    # the log's line, and the same sentence in the results block
    assert len(said) == 2, run.output[-3000:]
    summary = report(prefix)
    assert abs(summary["capacity_rps"] / CAPACITY - 1) <= 0.10, (summary["capacity_rps"], CAPACITY)
    low, high = summary["capacity_rps_ci"]
    bracket = summary["capacity_rps_bracket"]
    assert low <= summary["capacity_rps"] and (high is None or summary["capacity_rps"] <= high)
    assert bracket[0] <= summary["capacity_rps"] <= (bracket[1] or summary["capacity_rps"])
    # one answer, said the same
    assert said[0].split("] ", 1)[-1].split(": ", 1)[-1] in said[1]
    # every key it wrote is in the reference
    assert undocumented(summary) == []
    assert summary["capacity_goodput_tok_s"] > 0
    assert summary["levels"][0]["purpose"] == "throughput"


@pytest.mark.timeout(180)
def test_a_concurrency_sweep_on_two_workers_holds_each_level_globally(emulator_factory, tmp_path):
    emu = emulator_factory(*EMULATOR)
    prefix = tmp_path / "dist"
    mout = run_cluster(emu, prefix, "--sweep", "concurrency:2,6", "--level-requests", "30")
    rows = read_rows(prefix)
    # the level's count, across workers
    assert sorted(r["level"] for r in rows) == ["1"] * 30 + ["2"] * 30
    assert len({r["worker"] for r in rows}) == 2
    # at the server: never more in flight than the level's concurrency, and the level reached it
    by_id = {t["id"]: t for t in emu.truth() if t.get("id")}
    for level, concurrency in (("1", 2), ("2", 6)):
        spans = [
            (
                by_id[r["request_id"]]["received_wall"],
                by_id[r["request_id"]]["received_wall"] + by_id[r["request_id"]]["e2e_s"],
            )
            for r in rows
            if r["level"] == level
        ]
        events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
        peak = now = 0
        for _, step in events:
            now += step
            peak = max(peak, now)
        assert peak == concurrency, (level, peak)
    assert "Traceback" not in mout.text


@pytest.mark.timeout(120)
def test_the_web_ui_shows_the_level_and_the_levels_done(emulator_factory, tmp_path):
    emu = emulator_factory(*EMULATOR)
    proc, out = start_locust(
        "--web-host",
        "127.0.0.1",
        "--web-port",
        "0",
        "--autostart",
        "-u",
        "1",
        "-H",
        emu.url,
        *LOAD,
        "--sweep",
        "concurrency:1,2",
        "--level-requests",
        "40",
    )
    try:
        port = wait_for_line(out, r"web UI listening on port (\d+)").group(1)
        base = f"http://127.0.0.1:{port}"
        seen_running = False
        deadline = time.monotonic() + 60
        stats: dict = {}
        while time.monotonic() < deadline:
            stats = json.loads(urllib.request.urlopen(base + "/llm/stats", timeout=5).read())
            seen_running |= stats["current_level"] is not None
            if len(stats["levels"]) == 2:
                break
            time.sleep(0.2)
        assert seen_running and [lv["level"] for lv in stats["levels"]] == [1, 2], stats
        assert stats["levels"][1]["achieved_rate"] > 0 and stats["levels"][1]["median_ttft_ms"] > 0
        table = json.loads(urllib.request.urlopen(base + "/stats/requests", timeout=5).read())["extended_stats"]
        rows = {row["metric"]: row["now"] for row in table[0]["data"]}
        assert "Sweep: levels done" in rows
        page = urllib.request.urlopen(base + "/llm", timeout=5).read().decode()
        # the curve grows on the charts page, one point per level
        assert "drawSweep" in page
    finally:
        terminate_all([(proc, out)])
    assert "Traceback" not in out.text, out.text[-3000:]


@pytest.mark.timeout(180)
def test_a_rate_sweep_on_two_workers_sends_each_levels_count_from_the_masters_schedule(emulator_factory, tmp_path):
    emu = emulator_factory(*EMULATOR)
    prefix = tmp_path / "dist_rate"
    mout = run_cluster(emu, prefix, "--sweep", "rate:15,40", "--level-requests", "40", "--metrics-port", "0")
    rows = read_rows(prefix)
    assert sorted(r["level"] for r in rows) == ["1"] * 40 + ["2"] * 40
    assert len({r["worker"] for r in rows}) == 2 and all(r["scheduled_time"] for r in rows)
    assert [lv["saturated"] for lv in levels_file(prefix)] == ["False", "False"]
    assert "Traceback" not in mout.text


@pytest.mark.timeout(60)
def test_a_sweep_cut_short_by_the_run_time_ends_cleanly(emulator_factory, tmp_path):
    emu = emulator_factory(*EMULATOR)
    prefix = tmp_path / "cut"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-H",
        emu.url,
        *LOAD,
        "--sweep",
        "rate:10,20",
        "--level-duration",
        "30",
        "-t",
        "4s",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=50,
    )
    assert run.returncode == 0, run.output[-3000:]
    assert "Traceback" not in run.output and "the sweep" not in run.output
    # no level finished: none is reported as if it had
    assert levels_file(prefix) == []
    rows = read_rows(prefix)
    assert rows and {r["level"] for r in rows} == {"1"}


# the emulator's cache: 200 blocks of 16 tokens; prompts of a 512-token shared prefix and 128 of their own
CACHE_TOKENS = 200 * 16
CLIFF = ("--max-tokens", "4", "--input-tokens", "640", "--prefix-tokens", "512", "--request-rate", "30")


@pytest.mark.timeout(180)
def test_a_prefix_groups_sweep_finds_the_caches_cliff_where_its_capacity_says(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "5", "--step-ms-per-seq", "0.02", "--num-blocks", "200")
    prefix = tmp_path / "cliff"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-H",
        emu.url,
        *CLIFF,
        "--sweep",
        "prefix-groups:1,2,4,8,16,32",
        "--level-requests",
        "60",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=150,
    )
    assert run.returncode == 0, run.output[-3000:]
    assert "level 6: 32 shared prefixes at 30 req/s" in run.output
    rows = read_rows(prefix)
    assert sorted(r["level"] for r in rows) == sorted(str(n) for n in range(1, 7) for _ in range(60))
    report = subprocess.run(
        [sys.executable, "-m", "reports", str(prefix)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert report.returncode == 0, report.stderr
    summary = json.loads((tmp_path / "cliff_summary.json").read_text())
    by_set = {lv["working_set_tokens"]: lv for lv in summary["levels"]}
    assert sorted(by_set) == [512 * g for g in (1, 2, 4, 8, 16, 32)]
    # a working set that fits twice over is held; one over twice the cache is mostly lost (an LRU
    # cache keeps about capacity / working set of it)
    assert all(lv["prefix_cache_efficiency"] >= 0.9 for w, lv in by_set.items() if 2 * w <= CACHE_TOKENS)
    assert all(lv["prefix_cache_efficiency"] < 0.5 for w, lv in by_set.items() if w >= 2.5 * CACHE_TOKENS)
    low, high = summary["kv_cache_cliff_tokens"]
    assert low < 2 * CACHE_TOKENS and high > CACHE_TOKENS
    # the C / W rule is an approximation (the requests' own blocks take space too, and timing moves it):
    # 3,326 tokens in one run, 2,048 in another; the bound is the rule's resolution, not one run's
    assert CACHE_TOKENS / 2 < summary["kv_cache_capacity_estimate_tokens"] < CACHE_TOKENS * 2
    assert (tmp_path / "cliff_kv_working_set.png").exists()
    assert "the cliff" in (tmp_path / "cliff_report.html").read_text()


@pytest.mark.timeout(180)
def test_workers_switch_to_each_prefix_groups_levels_own_prompts(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "5", "--step-ms-per-seq", "0.02")
    prefix = tmp_path / "dist_cliff"
    mout = run_cluster(emu, prefix, *CLIFF, "--sweep", "prefix-groups:64,1", "--level-requests", "40")
    rows = read_rows(prefix)
    assert sorted(r["level"] for r in rows) == ["1"] * 40 + ["2"] * 40 and len({r["worker"] for r in rows}) == 2

    def hit_rate(level: str) -> float:
        mine = [r for r in rows if r["level"] == level]
        return sum(int(r["cached_tokens"]) for r in mine) / sum(int(r["prompt_tokens"]) for r in mine)

    # 64 prefixes for 40 requests: most are a prefix's first; one prefix: all but the first find it
    assert hit_rate("1") < 0.4 < 0.7 < hit_rate("2")
    assert "Traceback" not in mout.text


# 2 ms steps and 0.1 ms of prefill per uncached token: a 2,048-token prompt's first token takes about 207 ms
# uncached and 53 ms with 1,536 of its tokens cached (the emulator's step arithmetic, engine.py)
SPEEDUP_EMULATOR = ("--step-ms", "2", "--step-ms-per-seq", "0", "--prefill-ms-per-token", "0.1")


def predicted_ttft_ms(row: dict) -> float:
    """The emulator's TTFT for a request alone: one step per 2,048 prompt tokens computed, plus their prefill."""
    uncached = int(row["prompt_tokens"]) - int(row["cached_tokens"])
    return 2.0 * -(-uncached // 2048) + 0.1 * uncached


@pytest.mark.timeout(180)
def test_the_prefix_caches_speed_up_in_one_command_is_the_emulators_arithmetic(emulator_factory, tmp_path):
    emu = emulator_factory(*SPEEDUP_EMULATOR)
    prefix = tmp_path / "speedup"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-H",
        emu.url,
        "--sweep",
        "prefix-tokens:0,1536",
        "--repeat",
        "2",
        "--input-tokens",
        "2048",
        "--max-concurrency",
        "1",
        "--level-requests",
        "20",
        "--max-tokens",
        "4",
        "--csv",
        str(prefix),
        "--only-summary",
        "--check",
        "prefix_cache_speedup.median_ttft_ms>=2",
        timeout=150,
    )
    assert run.returncode == 0, run.output[-3000:]
    # judged at the run's end
    assert "speedup: check prefix_cache_speedup.median_ttft_ms>=2: " in run.output
    assert "level 4: 1536 shared prompt tokens at 1 in flight (repeat 2)" in run.output
    levels = [(lv["value"], lv["repeat"], lv["cache"]) for lv in levels_file(prefix)]
    assert levels == [("0.0", "1", "reset"), ("1536.0", "1", "reset"), ("0.0", "2", "reset"), ("1536.0", "2", "reset")]
    rows = read_rows(prefix)
    assert sorted((r["level"], r["repeat"]) for r in rows) == sorted(
        (str(n), str((n + 1) // 2))
        for n in range(1, 5)
        for _ in range(20)
        # exactly 20 rows a level, each with its repetition: A B A B, not A A B B
    )
    unshared = [r for r in rows if r["level"] in ("1", "3")]
    # the cache reset, and no prompt shared
    assert all(r["cached_tokens"] == "0" for r in unshared)
    shared = [r for r in rows if r["level"] in ("2", "4")]
    predicted = statistics.median(map(predicted_ttft_ms, unshared)) / statistics.median(map(predicted_ttft_ms, shared))
    summary = report(prefix)
    found = summary["prefix_cache_speedup"]
    assert found["prefix_tokens"] == 1536 and found["unshared_level"] == [1, 3] and found["shared_level"] == [2, 4]
    # measured: 3.76 against 3.89 (each TTFT also holds the client's and the HTTP's 2-3 ms, which the arithmetic
    # leaves out: an interval across repetitions of a deterministic emulator is too narrow to hold 3.89)
    assert found["median_ttft_ms"] == pytest.approx(predicted, rel=0.10)
    low, high = found["median_ttft_ms_ci"]
    assert 1 < low <= found["median_ttft_ms"] <= high
    assert [r["repeat"] for r in summary["repeats"]] == [1, 2] and summary["repeats"][1]["levels"] == [3, 4]
    assert all(found[k] is not None and found[f"{k}_ci"][0] is not None for k in ("mean_e2el_ms", "request_throughput"))
    assert (tmp_path / "speedup_prefix_cache_speedup.png").exists()
    assert "Shared prefix of 1,536 of 2,048 tokens: TTFT p50 " in (tmp_path / "speedup_report.html").read_text()


@pytest.mark.timeout(180)
def test_workers_switch_to_each_prefix_tokens_levels_own_prompts_in_a_closed_loop(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "5", "--step-ms-per-seq", "0.02")
    prefix = tmp_path / "dist_tokens"
    mout = run_cluster(emu, prefix, "--sweep", "prefix-tokens:0,48", "--max-concurrency", "4", "--level-requests", "40")
    rows = read_rows(prefix)
    assert sorted(r["level"] for r in rows) == ["1"] * 40 + ["2"] * 40 and len({r["worker"] for r in rows}) == 2
    cached = {lv: sum(int(r["cached_tokens"]) for r in rows if r["level"] == lv) for lv in ("1", "2")}
    # all but a worker's first few find the shared 48 tokens
    assert cached["1"] == 0 < 38 * 48 <= cached["2"]
    assert "Traceback" not in mout.text
