"""Sessions against real vLLM on CPU: its prefix cache holds each turn's history exactly as the history
predicts (whole blocks of the previous prompt), and a small KV cache forgets sessions whose users think
longer than its LRU arithmetic allows."""

from __future__ import annotations

import itertools
import json
import re

import pytest

from tests.procs import by_session, lru_forgets_after, read_rows, run_locust
from tests.vllm.conftest import VLLMServer

pytestmark = pytest.mark.vllm

# scripts/vllm_cpu_serve.sh's --block-size
BLOCK = 32


@pytest.mark.timeout(400)
def test_four_turn_sessions_find_their_history_in_vllms_cache_block_for_block(vllm_server, tmp_path):
    prefix = tmp_path / "talk"
    run = run_locust(
        "--headless",
        "-u",
        "3",
        "-r",
        "3",
        "--sessions",
        "6",
        "-H",
        vllm_server.url,
        "--input-tokens",
        "200",
        "--prefix-tokens",
        "64",
        "--turns",
        "4",
        "--turn-tokens",
        "24",
        "--think-time",
        "0.2",
        "--max-tokens",
        "4",
        # (the tiny model often says <|eot_id|> first: a stream without text)
        "--ignore-eos",
        "--kv-block-size",
        str(BLOCK),
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=300,
    )
    assert run.returncode == 0, run
    rows = read_rows(prefix)
    sessions = by_session(rows)
    assert len(sessions) == 6 and len(rows) == 24 and all(r["success"] == "true" for r in rows)
    for turns in sessions.values():
        cached = [int(r["cached_tokens"]) for r in turns]
        for prior, row in itertools.pairwise(turns):
            read = int(prior["prompt_tokens"])
            assert int(row["ideal_cached_tokens"]) == read // BLOCK * BLOCK
            # the previous prompt's whole blocks; vLLM also keeps the answer's computed tokens (all but the
            # last), so when they complete a block and the answer's text comes back as the same tokens, that one
            with_answer = (read + int(prior["output_tokens"]) - 1) // BLOCK * BLOCK
            assert int(row["cached_tokens"]) in (read // BLOCK * BLOCK, with_answer)
        # growing turn by turn
        assert cached[1] < cached[2] < cached[3]
    summary = json.loads(prefix.with_name("talk_summary.json").read_text())
    assert summary["history_kept"] == 1.0 and [t["turn"] for t in summary["by_turn"]] == [1, 2, 3, 4]


@pytest.fixture
def small_cache_server(vllm_setup):
    # a cache of 128 blocks (4096 tokens; prompts up to 2048)
    server = VLLMServer(
        "--enable-prefix-caching", "--max-num-seqs", "16", "--num-gpu-blocks-override", "128", "--max-model-len", "2048"
    )
    yield server
    server.stop()


@pytest.mark.timeout(600)
def test_a_think_time_sweep_finds_where_a_small_vllm_cache_forgets(small_cache_server, tmp_path):
    found = re.search(r'vllm:cache_config_info\{[^}]*num_gpu_blocks="(\d+)"', small_cache_server.get_text("/metrics"))
    capacity = int(found.group(1)) if found else 128
    rate, gaps = 4.0, (0.25, 0.5, 4.0, 8.0)
    prefix = tmp_path / "keep"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "--session-rate",
        str(rate),
        "--burstiness",
        "1000",
        "--sweep",
        "think-time:" + ",".join(map(str, gaps)),
        "--level-duration",
        "4",
        "-H",
        small_cache_server.url,
        "--input-tokens",
        "256",
        "--turns",
        "2",
        "--turn-tokens",
        "32",
        "--max-tokens",
        "4",
        "--ignore-eos",
        "--kv-block-size",
        str(BLOCK),
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=400,
    )
    assert run.returncode == 0, run
    # vLLM's free queue evicts its least recently used blocks first, as the emulator's cache does
    forgets_after = lru_forgets_after(read_rows(prefix), capacity, rate, BLOCK)
    summary = json.loads(prefix.with_name("keep_summary.json").read_text())
    print("vLLM retention:", summary["retention"], "arithmetic:", forgets_after)
    low, high = summary["retention_gap_s_bracket"]
    assert gaps.index(high) == gaps.index(low) + 1
    assert low < forgets_after < high
