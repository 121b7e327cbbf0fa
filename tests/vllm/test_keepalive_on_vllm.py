"""Against real vLLM, whose server closes keep-alive connections idle for 5 s: idle gaps longer than that on
every kind of connection the suite keeps, so this cannot pass by the machine's speed; and every synthetic
prompt exactly --input-tokens long as vLLM's own usage counts it."""

from __future__ import annotations

import collections
import itertools

import pytest

from tests.procs import read_rows, run_locust

pytestmark = pytest.mark.vllm


def assert_clean(run, rows, n: int, input_tokens: int) -> None:
    assert run.returncode == 0, run.output
    assert "Traceback" not in run.output
    assert len(rows) == n and all(r["success"] == "true" for r in rows), [r["error"] for r in rows]
    assert collections.Counter(int(r["prompt_tokens"]) for r in rows) == {input_tokens: n}


@pytest.mark.timeout(300)
def test_a_slow_single_user_with_a_scrape_interval_longer_than_the_run(vllm_server, tmp_path):
    # 1,000 tokens a stream (about 2 s on this CPU), 24 of them: the /metrics connection sits idle from the
    # first scrape to the last (about 50 s) and the prompt counter's from the start to the end
    prefix = tmp_path / "slow"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-n",
        "24",
        "-H",
        vllm_server.url,
        "--input-tokens",
        "512",
        "--max-tokens",
        "1000",
        "--ignore-eos",
        "--metrics-interval",
        "600",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=240,
    )
    rows = read_rows(prefix)
    assert_clean(run, rows, 24, 512)
    assert all(int(r["output_tokens"]) == 1000 for r in rows)
    span = float(rows[-1]["start_time"]) - float(rows[0]["start_time"])
    # longer than vLLM's 5 s keep-alive timeout, whatever the machine's speed
    assert span > 10
    scrapes = (tmp_path / "slow_server_metrics.csv").read_text().splitlines()
    # the last scrape went out on a connection the server had closed long before
    assert len(scrapes) >= 3


@pytest.mark.timeout(300)
def test_an_open_loop_slower_than_the_keepalive_timeout_with_exact_1024_token_prompts(vllm_server, tmp_path):
    # 6.7 s between arrivals: every connection kept ready (and the one that carried the last stream) is idle
    # past 5 s when the next arrival is due
    prefix = tmp_path / "rate"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-n",
        "3",
        "-H",
        vllm_server.url,
        "--request-rate",
        "0.15",
        "--burstiness",
        "inf",
        "--input-tokens",
        "1024",
        "--max-tokens",
        "8",
        "--ignore-eos",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=120,
    )
    rows = read_rows(prefix)
    assert_clean(run, rows, 3, 1024)
    starts = sorted(float(r["start_time"]) for r in rows)
    assert min(b - a for a, b in itertools.pairwise(starts)) > 5


@pytest.mark.timeout(300)
def test_shared_prefix_prompts_are_exactly_as_long_as_asked(vllm_server, tmp_path):
    # --ignore-eos: the tiny model samples (the server's temperature) and may end a stream before its first
    # token, which is a failed request ("stream carried no tokens"), not what this test is about
    prefix = tmp_path / "shared"
    run = run_locust(
        "--headless",
        "-u",
        "8",
        "-r",
        "8",
        "-n",
        "48",
        "-H",
        vllm_server.url,
        "--input-tokens",
        "1024",
        "--prefix-tokens",
        "960",
        "--max-tokens",
        "8",
        "--ignore-eos",
        "--seed",
        "11",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=180,
    )
    assert_clean(run, read_rows(prefix), 48, 1024)
