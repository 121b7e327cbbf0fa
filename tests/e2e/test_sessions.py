"""Sessions against the emulator, whose truth log says when each turn arrived, for which session (its
header), and what its prefix cache held: think times held, session arrivals at the asked rate, every row's
session and turn, cached tokens equal to the history's prediction, the retention a think-time sweep finds
against the emulator's LRU arithmetic, and exact counts with sessions kept on one worker."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from scipy import stats

from emulator.tokenizer import chat_ids
from tests.e2e.test_distributed import wait_for_cluster
from tests.procs import Run, by_session, lru_forgets_after, read_rows, run_locust, start_locust, start_master

FAST = ("--step-ms", "5", "--step-ms-per-seq", "0.02", "--prefill-ms-per-token", "0.001", "--eos-prob", "0")
BLOCK = 16


def answer_ended(truth: dict) -> float:
    """When the server wrote a request's last token (unix s)."""
    return truth["received_wall"] + truth["e2e_s"]


@pytest.mark.timeout(180)
def test_closed_loop_sessions_hold_their_think_time_and_the_cache_holds_their_history(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
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
        emu.url,
        "--input-tokens",
        "200",
        "--prefix-tokens",
        "100",
        "--turns",
        "3",
        "--turn-tokens",
        "40",
        "--max-tokens",
        "20",
        "--think-time",
        "0.3",
        "--session-header",
        "x-session-id",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 0, run
    assert "All 6 sessions finished" in run.output
    rows = read_rows(prefix)
    truth = {t["id"]: t for t in emu.truth()}
    sessions = by_session(rows)
    # exactly six sessions of three turns, each row saying its session and turn, the last marked
    assert len(rows) == 18 and len(sessions) == 6 and all(r["success"] == "true" for r in rows)
    for sid, turns in sessions.items():
        assert [int(r["turn"]) for r in turns] == [1, 2, 3]
        assert [r["last_turn"] for r in turns] == ["false", "false", "true"]
        seen = [truth[r["request_id"]] for r in turns]
        # the header reached the server
        assert {t["session"] for t in seen} == {sid}
        for (before, after), (prior, row) in zip(itertools.pairwise(seen), itertools.pairwise(turns), strict=True):
            # the server saw the next turn no earlier than the think time after it wrote the answer
            assert after["received_wall"] - answer_ended(before) >= 0.3
            # the history's whole blocks, cached exactly as predicted
            ideal = int(prior["prompt_tokens"]) // BLOCK * BLOCK
            assert int(row["ideal_cached_tokens"]) == ideal == int(row["cached_tokens"]) == after["cached_tokens"]
            assert int(row["prompt_tokens"]) > int(prior["prompt_tokens"]) + 40
    summary = json.loads(prefix.with_name("talk_summary.json").read_text())
    assert summary["sessions"] == 6 and summary["history_kept"] == 1.0
    assert [t["turn"] for t in summary["by_turn"]] == [1, 2, 3]


@pytest.mark.timeout(180)
def test_sessions_arrive_at_the_asked_rate_and_a_session_file_is_replayed_exactly(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    plan = [
        {"input_tokens": 120, "output_tokens": 6},
        {"kind": "tool", "input_tokens": 64, "output_tokens": 9, "gap_s": 0.2},
        {"input_tokens": 30, "output_tokens": 5, "gap_s": 0.4},
    ]
    # and a recorded conversation (ShareGPT): its own messages, its replies' lengths in words
    said = ["What is a prefix cache?", "a cache of blocks", "And how long does it keep them?", "until evicted"]
    talk = [{"from": "human" if i % 2 == 0 else "gpt", "value": text} for i, text in enumerate(said)]
    path = tmp_path / "agents.jsonl"
    lines = [{"session_id": f"a{i}", "turns": plan} for i in range(3)] + [{"id": "c1", "conversations": talk}]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    prefix = tmp_path / "agents"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "--session-rate",
        "25",
        "--sessions",
        "150",
        "--seed",
        "7",
        "-H",
        emu.url,
        "--session-file",
        str(path),
        "--session-time-scale",
        "0.5",
        "--think-time",
        "0.3",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 0, run
    assert "open loop: 150 sessions" in run.output
    rows = read_rows(prefix)
    truth = {t["id"]: t for t in emu.truth()}
    sessions = by_session(rows)
    # the file's four sessions in turn: 113 of three turns, 37 conversations of two
    assert len(sessions) == 150 and len(rows) == 113 * 3 + 37 * 2 and all(r["success"] == "true" for r in rows)
    # the sessions' first turns reached the server as a Poisson process at 25 per second
    firsts = np.sort([truth[turns[0]["request_id"]]["received_wall"] for turns in sessions.values()])
    assert stats.kstest(np.diff(firsts), "expon", args=(0, 1 / 25)).pvalue > 0.01
    overhead = len(chat_ids([{"role": "user", "content": ""}]))
    for sid, turns in sessions.items():
        seen = [truth[r["request_id"]] for r in turns]
        if sid.endswith("-c1"):
            # the conversation's first message as it is; answers as long as its replies; --think-time between
            assert int(turns[0]["prompt_tokens"]) == len(chat_ids([{"role": "user", "content": said[0]}]))
            assert [int(r["output_tokens"]) for r in turns] == [4, 2]
            assert seen[1]["received_wall"] - answer_ended(seen[0]) >= 0.3
            continue
        # exact lengths: the first message's tokens, each answer's
        assert int(turns[0]["prompt_tokens"]) == overhead + 120
        assert [int(r["output_tokens"]) for r in turns] == [6, 9, 5]
        # the tool's time, then the user's, scaled by 0.5
        assert seen[1]["received_wall"] - answer_ended(seen[0]) >= 0.1
        assert seen[2]["received_wall"] - answer_ended(seen[1]) >= 0.2
        assert int(turns[1]["cached_tokens"]) == (overhead + 120) // BLOCK * BLOCK


@pytest.mark.timeout(240)
@pytest.mark.parametrize("workers", [0, 2], ids=["local", "two-workers"])
def test_a_think_time_sweep_finds_where_the_emulators_lru_cache_forgets(emulator_factory, tmp_path, workers):
    capacity, rate = 440, 10.0
    emu = emulator_factory(*FAST, "--num-blocks", str(capacity))
    prefix = tmp_path / "keep"
    gaps = (0.25, 0.5, 2.0, 4.0)
    # evenly spaced sessions (the arithmetic below counts them), of two turns, at each think time
    load = ("--session-rate", str(rate), "--burstiness", "1000", "--sweep", "think-time:" + ",".join(map(str, gaps)))
    sizes = ("--input-tokens", "320", "--turns", "2", "--turn-tokens", "16", "--max-tokens", "8")
    args = ("--headless", "-u", "2", *load, "--level-duration", "3", "-H", emu.url, *sizes, "--csv", str(prefix))
    if workers:
        master, master_out, port = start_master(*args, "--expect-workers", str(workers), "--only-summary")
        procs = [start_locust("--worker", "--master-host", "127.0.0.1", "--master-port", str(port)) for _ in range(2)]
        outputs, _ = wait_for_cluster(master, master_out, procs)
        run = Run(master.returncode, outputs[0])
    else:
        run = run_locust(*args, "--only-summary", timeout=200)
    assert run.returncode == 0, run
    rows = read_rows(prefix)
    forgets_after = lru_forgets_after(rows, capacity, rate, BLOCK)
    summary = json.loads(prefix.with_name("keep_summary.json").read_text())
    low, high = summary["retention_gap_s_bracket"]
    # the bracket is two neighbouring levels around the arithmetic's point: found within one sweep step
    assert gaps.index(high) == gaps.index(low) + 1
    assert low < forgets_after < high, (summary["retention"], forgets_after)
    kept = {g["think_time_s"]: g["kept"] for g in summary["retention"]}
    assert kept[gaps[0]] == 1.0 and kept[gaps[-1]] == 0.0


@pytest.mark.timeout(240)
@pytest.mark.parametrize("count", [("--sessions", "8"), ("-n", "10")], ids=["sessions", "requests"])
def test_sessions_stay_on_one_worker_and_the_counts_are_exact(emulator_factory, tmp_path, count):
    emu = emulator_factory(*FAST)
    prefix = tmp_path / "spread"
    master, master_out, port = start_master(
        "--headless",
        "--expect-workers",
        "2",
        "-u",
        "4",
        "-r",
        "4",
        *count,
        "-H",
        emu.url,
        "--input-tokens",
        "64",
        "--turns",
        "3",
        "--turn-tokens",
        "16",
        "--max-tokens",
        "4",
        "--think-time",
        "0.1",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    procs = [start_locust("--worker", "--master-host", "127.0.0.1", "--master-port", str(port)) for _ in range(2)]
    outputs, _ = wait_for_cluster(master, master_out, procs)
    assert master.returncode == 0, outputs[0][-3000:]
    rows = read_rows(prefix)
    sessions = by_session(rows)
    # each session's turns from one worker
    assert all(len({r["worker"] for r in turns}) == 1 for turns in sessions.values())
    assert emu.stats()["by_path"]["/v1/chat/completions"] == len(rows)
    if count[0] == "--sessions":
        assert len(sessions) == 8 and len(rows) == 24
        assert all([int(r["turn"]) for r in turns] == [1, 2, 3] for turns in sessions.values())
    else:
        # -n counts requests: the sessions still going when it is spent end there
        assert len(rows) == 10 and all(r["success"] == "true" for r in rows)


@pytest.mark.timeout(180)
def test_a_session_kept_on_one_host_keeps_its_history_and_one_sent_round_robin_does_not(emulator_factory, tmp_path):
    kept = {}
    for strategy in ("session", "round-robin"):
        # servers of their own: the same --seed sends the same sessions again
        one, two = emulator_factory(*FAST), emulator_factory(*FAST)
        prefix = tmp_path / strategy
        run = run_locust(
            "--headless",
            "-u",
            "1",
            "--sessions",
            "4",
            "-H",
            f"{one.url},{two.url}",
            "--host-strategy",
            strategy,
            "--input-tokens",
            "200",
            "--turns",
            "3",
            "--turn-tokens",
            "40",
            "--max-tokens",
            "8",
            "--session-header",
            "x-session-id",
            "--csv",
            str(prefix),
            "--only-summary",
        )
        assert run.returncode == 0, run
        rows = read_rows(prefix)
        summary = json.loads(prefix.with_name(f"{strategy}_summary.json").read_text())
        kept[strategy] = summary["history_kept_turns"]
        if strategy == "session":
            assert all(len({r["host"] for r in turns}) == 1 for turns in by_session(rows).values())
        # by host, the later turns each found (or did not find) its history there
        assert set(summary["by_turn_by_host"]) == {one.url, two.url}
    # a router with session affinity keeps every history; round robin sends each next turn to the other host
    assert kept == {"session": 1.0, "round-robin": 0.0}
