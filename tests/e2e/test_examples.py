"""The examples, each run as ``locust -f examples/NAME.py`` against the emulator: custom tasks written
against ``self.client`` get the same exact rows, budget and TTFT agreement as the built-in task."""

from __future__ import annotations

import pytest

from tests.procs import ROOT, TTFT_ERROR_FLOOR_S, read_rows, run_locust, ttft_errors

FAST = ("--step-ms", "5", "--step-ms-per-seq", "0.02", "--prefill-ms-per-token", "0.002", "--eos-prob", "0")


def run_example(name: str, emu, prefix, users: int, n: int):
    run = run_locust(
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-n",
        str(n),
        "-H",
        emu.url,
        "--csv",
        str(prefix),
        "--only-summary",
        locustfile=str(ROOT / "examples" / f"{name}.py"),
    )
    assert run.returncode == 0, run
    assert "Traceback" not in run.output
    rows = read_rows(prefix)
    truth = emu.truth()
    # -n counts every call of a custom task, exactly
    assert len(rows) == n == len(truth)
    assert all(r["success"] == "true" and r["cancelled"] == "false" for r in rows), rows[:3]
    by_id = {t["id"]: t for t in truth}
    for r in rows:
        t = by_id[r["request_id"]]
        assert (int(r["prompt_tokens"]), int(r["output_tokens"])) == (t["prompt_tokens"], t["output_tokens"])
    errors = ttft_errors(rows, truth)
    assert errors[0] >= TTFT_ERROR_FLOOR_S, errors[:5]
    assert errors[len(errors) // 2] < 0.003 and errors[-1] < 0.025, (errors[len(errors) // 2], errors[-3:])
    return rows


@pytest.mark.timeout(180)
def test_rag_example_shares_its_system_prompt(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    rows = run_example("rag", emu, tmp_path / "rag", users=8, n=40)
    cached = sorted(int(r["cached_tokens"]) for r in rows)
    # after the first requests, the long system prompt is a cache hit
    assert cached[len(cached) // 2] > 100


@pytest.mark.timeout(180)
def test_agent_example_chains_dependent_calls(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    rows = run_example("agent", emu, tmp_path / "agent", users=4, n=40)
    plans = [r for r in rows if r["request_id"] and int(r["prompt_tokens"]) < 60]
    replies = [r for r in rows if int(r["prompt_tokens"]) >= 60]
    assert plans and replies and len(plans) + len(replies) == 40
    # every plan has the same prompt; a reply carries a whole 48-token plan in its messages
    assert len({r["prompt_tokens"] for r in plans}) == 1
    assert min(int(r["prompt_tokens"]) for r in replies) >= int(plans[0]["prompt_tokens"]) + 48


@pytest.mark.timeout(180)
def test_mixed_example_weights_its_tasks(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    rows = run_example("mixed", emu, tmp_path / "mixed", users=8, n=120)
    long = [r for r in rows if int(r["prompt_tokens"]) > 500]
    short = [r for r in rows if int(r["prompt_tokens"]) <= 500]
    assert all(r["output_tokens"] == "128" for r in long) and all(r["output_tokens"] == "16" for r in short)
    # weight 3:1 -> 90 expected; the bounds are 6 standard deviations
    assert 60 <= len(short) <= 112, len(short)


@pytest.mark.timeout(180)
def test_search_example_embeds_then_answers_through_the_responses_api(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    run = run_locust(
        "--headless",
        "-u",
        "4",
        "-r",
        "4",
        "-n",
        "40",
        "-H",
        emu.url,
        "--csv",
        str(tmp_path / "search"),
        "--only-summary",
        locustfile=str(ROOT / "examples" / "search.py"),
    )
    assert run.returncode == 0, run
    assert "Traceback" not in run.output
    rows = read_rows(tmp_path / "search")
    truth = {t["id"]: t for t in emu.truth() if t.get("id")}
    assert len(rows) == len(truth) == 40 and all(r["success"] == "true" for r in rows)
    embedded = [r for r in rows if r["endpoint"] == "embeddings"]
    answered = [r for r in rows if r["endpoint"] == "responses"]
    # -n may end mid-task
    assert len(embedded) + len(answered) == 40 and 0 <= len(embedded) - len(answered) <= 4
    assert all(
        r["ttft_s"] == "" and int(r["prompt_tokens"]) == truth[r["request_id"]]["prompt_tokens"] for r in embedded
    )
    assert all(int(r["output_tokens"]) == truth[r["request_id"]]["output_tokens"] for r in answered)
    assert all(r["image_count"] == "1" for r in answered) and all(r["image_count"] == "" for r in embedded)
