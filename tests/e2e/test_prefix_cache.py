"""Shared-prefix prompts and prefix-cache accounting, end to end against the emulator."""

from __future__ import annotations

import csv
import html
import json
import subprocess
import sys

import pytest

from tests.e2e.test_bad_input import assert_one_clear_error
from tests.procs import ROOT, read_rows, run_locust

FAST = ("--step-ms", "5", "--step-ms-per-seq", "0.02", "--prefill-ms-per-token", "0.001")


def server_rows(prefix) -> list[dict]:
    with open(f"{prefix}_server_metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.timeout(180)
def test_shared_prefix_hits_the_cache_and_metrics_agree(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    prefix = tmp_path / "pc"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-r",
        "1",
        "-n",
        "24",
        "-H",
        emu.url,
        "--input-tokens",
        "512",
        "--prefix-tokens",
        "256",
        "--prefix-groups",
        "3",
        "--max-tokens",
        "4",
        "--metrics-interval",
        "0.5",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 0, run
    rows = read_rows(prefix)
    truth = {t["id"]: t for t in emu.truth()}
    assert len(rows) == 24 == len(truth)
    # sized exactly with the server's /tokenize
    assert all(int(r["prompt_tokens"]) == 512 for r in rows)
    seen_groups: set = set()
    first_in_group = 0
    for r in sorted(rows, key=lambda r: float(r["start_time"])):
        t = truth[r["request_id"]]
        assert int(r["cached_tokens"]) == t["cached_tokens"]
        # the prefix is the only reuse: a group's first request misses, every later one hits
        group = r["request_id"] if int(r["cached_tokens"]) == 0 else None
        if group is not None:
            first_in_group += 1
        else:
            # the prefix and its template header, in whole blocks
            assert int(r["cached_tokens"]) >= 256
        seen_groups.add(group)
    assert first_in_group == 3
    metrics = server_rows(prefix)
    assert len(metrics) >= 2
    dq = float(metrics[-1]["prefix_cache_queries_total"]) - float(metrics[0]["prefix_cache_queries_total"])
    dh = float(metrics[-1]["prefix_cache_hits_total"]) - float(metrics[0]["prefix_cache_hits_total"])
    usage_rate = sum(int(r["cached_tokens"]) for r in rows) / sum(int(r["prompt_tokens"]) for r in rows)
    assert dh / dq == pytest.approx(usage_rate, rel=0.01)
    proc = subprocess.run(
        [sys.executable, "-m", "reports", str(prefix)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "pc_summary.json").read_text())
    assert summary["prefix_cache_hit_rate_source"] == "server_metrics"
    assert summary["prefix_cache_hit_rate"] == pytest.approx(usage_rate, rel=0.01)
    assert summary["cache_hit_requests"] == 21
    assert (tmp_path / "pc_server_metrics.png").stat().st_size > 10_000


@pytest.mark.timeout(180)
def test_warmup_primes_every_group_and_is_not_counted(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    prefix = tmp_path / "wu"
    run = run_locust(
        "--headless",
        "-u",
        "8",
        "-r",
        "8",
        "-n",
        "40",
        "-H",
        emu.url,
        "--input-tokens",
        "400",
        "--prefix-tokens",
        "320",
        "--prefix-groups",
        "2",
        "--warmup",
        "1",
        "--max-tokens",
        "4",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 0, run
    rows = read_rows(prefix)
    assert len(rows) == 40
    # 40 measured + 1 warm-up per group
    assert emu.stats()["by_path"]["/v1/chat/completions"] == 42
    # every measured request hits
    assert all(int(r["cached_tokens"]) >= 320 for r in rows)
    with open(f"{prefix}_stats.csv", newline="") as f:
        post = next(r for r in csv.DictReader(f) if r["Type"] == "POST")
    assert post["Request Count"] == "40"
    metrics = server_rows(prefix)
    dq = float(metrics[-1]["prefix_cache_queries_total"]) - float(metrics[0]["prefix_cache_queries_total"])
    # warm-up happened before the first scrape
    assert dq == sum(int(r["prompt_tokens"]) for r in rows)


@pytest.mark.timeout(180)
def test_reset_prefix_cache_makes_a_rerun_cold_and_warns_where_not_allowed(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    args = (
        "--headless",
        "-u",
        "1",
        "-n",
        "3",
        "-H",
        emu.url,
        "--input-tokens",
        "300",
        "--prefix-tokens",
        "200",
        "--max-tokens",
        "2",
        "--seed",
        "9",
        "--only-summary",
    )
    warned = "already in the server's prefix cache"
    first = run_locust(*args, "--csv", str(tmp_path / "a"))
    assert first.returncode == 0 and warned not in first.output
    assert {r["warm_cache"] for r in read_rows(tmp_path / "a")} == {"false"}
    again = run_locust(*args, "--csv", str(tmp_path / "b"))
    assert again.returncode == 0
    # warm from the first run
    assert int(read_rows(tmp_path / "b")[0]["cached_tokens"]) > 0
    # the same seed sends the same prompts: their own parts were cached by the first run, and the run says so
    assert {r["warm_cache"] for r in read_rows(tmp_path / "b")} == {"true"}
    assert sum(warned in line for line in again.output.splitlines()) == 1
    subprocess.run(
        [sys.executable, "-m", "reports", str(tmp_path / "b")], cwd=ROOT, check=True, timeout=300, capture_output=True
    )
    assert json.loads((tmp_path / "b_summary.json").read_text())["warm_cache_requests"] == 3
    assert warned in html.unescape((tmp_path / "b_report.html").read_text())
    # a new --seed
    fresh = run_locust(*[a if a != "9" else "10" for a in args], "--csv", str(tmp_path / "d"))
    assert fresh.returncode == 0 and warned not in fresh.output
    run = run_locust(*args, "--csv", str(tmp_path / "c"), "--reset-prefix-cache")
    assert run.returncode == 0 and "prefix cache reset" in run.output and warned not in run.output
    assert int(sorted(read_rows(tmp_path / "c"), key=lambda r: r["start_time"])[0]["cached_tokens"]) == 0
    locked = emulator_factory(*FAST, "--no-dev-mode")
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-n",
        "1",
        "-H",
        locked.url,
        "--max-tokens",
        "2",
        "--input-tokens",
        "64",
        "--reset-prefix-cache",
        "--only-summary",
    )
    assert run.returncode == 0, run
    assert "does not allow resetting its prefix cache" in run.output and "VLLM_SERVER_DEV_MODE=1" in run.output


@pytest.mark.timeout(120)
def test_dataset_prompts_and_their_output_lengths(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    data = tmp_path / "data.jsonl"
    data.write_text(
        "\n".join(json.dumps({"prompt": f"question number {i}?", "output_tokens": 3 + i}) for i in range(4)) + "\n"
    )
    prefix = tmp_path / "ds"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-n",
        "4",
        "-H",
        emu.url,
        "--dataset",
        str(data),
        "--ignore-eos",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 0, run
    assert sorted(int(r["output_tokens"]) for r in read_rows(prefix)) == [3, 4, 5, 6]


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (("--prefix-tokens", "600", "--input-tokens", "500"), ("--prefix-tokens (600) must be smaller",)),
        (("--dataset", "/nonexistent/data.jsonl"), ("--dataset", "no such file")),
        (("--tokenizer", "/nonexistent/tokenizer"), ("cannot load tokenizer",)),
    ],
)
def test_bad_prompt_input(emulator_factory, extra, fragments):
    emu = emulator_factory()
    run = run_locust("--headless", "-u", "1", "-n", "1", "-H", emu.url, *extra, timeout=60)
    assert_one_clear_error(run, *fragments)


def test_empty_dataset(emulator_factory, tmp_path):
    emu = emulator_factory()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    run = run_locust("--headless", "-u", "1", "-n", "1", "-H", emu.url, "--dataset", str(empty), timeout=60)
    assert_one_clear_error(run, "no usable prompts")


def test_server_without_tokenize_and_no_tokenizer(emulator_factory):
    emu = emulator_factory("--no-tokenize")
    run = run_locust("--headless", "-u", "1", "-n", "1", "-H", emu.url, timeout=60)
    assert_one_clear_error(run, "no /tokenize", "--tokenizer")


@pytest.mark.timeout(120)
def test_local_tokenizer_sizes_prompts_in_a_real_run(emulator_factory, tmp_path):
    from prompts.tokenizer import LocalTokenizer
    from tools.tiny_llama import build_tokenizer

    tok_dir = tmp_path / "tok"
    build_tokenizer(str(tok_dir))
    emu = emulator_factory(*FAST)
    prefix = tmp_path / "lt"
    run = run_locust(
        "--headless",
        "-u",
        "2",
        "-n",
        "6",
        "-H",
        emu.url,
        "--tokenizer",
        str(tok_dir),
        "--input-tokens",
        "256",
        "--prefix-tokens",
        "128",
        "--max-tokens",
        "2",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 0, run
    assert "Traceback" not in run.output
    counter = LocalTokenizer(str(tok_dir))
    # the emulator tokenizes differently; what was sent is sized in the given tokenizer's tokens
    assert all(r["success"] == "true" for r in read_rows(prefix))
    assert counter.count("", True) > 0
