"""Traces: reading the three formats, one line per bad row, the ideal cache, exact prompts, the generator."""

from __future__ import annotations

import json
import math

import pytest

from prompts.source import PromptError
from prompts.trace_prompts import TracePrompts
from scheduler.trace import Trace, TraceError, TraceRequest, arrivals, hit_rate, ideal_cached_tokens, load_trace
from tests.unit.prompts.test_prompts import _PIECE, PieceCounter, tiny_tokenizer  # noqa: F401 (a fixture)
from tools.make_trace import generate
from tools.make_trace import main as make_trace


def write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def mooncake(t_ms, n_in, ids, n_out=8):
    return {"timestamp": t_ms, "input_length": n_in, "output_length": n_out, "hash_ids": ids}


def test_mooncake_times_in_seconds_from_the_first_and_its_rate(tmp_path):
    path = write_jsonl(
        tmp_path / "t.jsonl", [mooncake(1000, 600, [1, 2]), mooncake(1500, 512, [1]), mooncake(3000, 10, [7], 3)]
    )
    trace = load_trace(path, block_tokens=512)
    assert trace.format == "mooncake"
    assert [r.time_s for r in trace.requests] == [0.0, 0.5, 2.0]
    assert trace.requests[2] == TraceRequest(2, 2.0, 10, 3, (7,), "", f"{path}: line 3")
    assert trace.rate() == pytest.approx(1.0) and trace.rate(2.0) == pytest.approx(2.0)
    assert [(a.index, a.offset_s) for a in arrivals(trace, speed=2.0, total=2)] == [(0, 0.0), (1, 0.25)]


def test_azure_csv_with_dates_or_seconds(tmp_path):
    path = tmp_path / "azure.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,4808,10\n"
        "2023-11-16 18:15:50.1805900,3180,8\n"
    )
    trace = load_trace(str(path))
    assert trace.format == "azure"
    assert [(r.time_s, r.input_length, r.output_length) for r in trace.requests] == [(0.0, 4808, 10), (3.5, 3180, 8)]
    path.write_text("timestamp,input_tokens,output_tokens\n10.5,100,5\n11,120,6\n")
    assert [r.time_s for r in load_trace(str(path), "azure").requests] == [0.0, 0.5]


def test_a_runs_own_rows_replay_in_send_order_without_the_failed_ones(tmp_path):
    path = tmp_path / "run_requests.csv"
    path.write_text(
        "request_id,start_time,success,prompt_tokens,output_tokens,scheduled_time\n"
        "b,101.0,true,300,20,\n"
        "c,102.0,false,,,\n"
        "a,100.5,true,200,10,100.2\n"
    )
    trace = load_trace(str(path))
    assert trace.format == "requests"
    assert [(r.time_s, r.input_length, r.output_length) for r in trace.requests] == [
        (0.0, 200, 10),
        (pytest.approx(0.8), 300, 20),
    ]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([mooncake(10, 5, [1]), mooncake(5, 5, [2])], "line 2: timestamp 0.005 is earlier than the row before"),
        ([mooncake(-5, 5, [1])], "line 1: negative timestamp"),
        ([{"timestamp": 0, "output_length": 4, "hash_ids": [1]}], "line 1: missing input_length"),
        (
            [mooncake(0, 5, [1]), {"timestamp": 1, "input_length": 5, "output_length": "x"}],
            "line 2: output_length is not a number",
        ),
        ([mooncake(0, 1100, [1, 2])], "line 1: 2 hash ids for input_length 1100, but blocks of 512 tokens make 3"),
        ([mooncake(0, 0, [])], "line 1: input_length must be a whole number of at least 1"),
        ([mooncake(0, 5, ["a"])], "line 1: hash_ids must be a list of whole numbers"),
    ],
)
def test_a_bad_trace_is_one_line_naming_the_row(tmp_path, records, message):
    path = write_jsonl(tmp_path / "bad.jsonl", records)
    with pytest.raises(TraceError) as err:
        load_trace(path)
    assert message in str(err.value) and str(err.value).startswith(f"trace {path}")
    assert "\n" not in str(err.value)


def test_unreadable_traces(tmp_path):
    with pytest.raises(TraceError, match="no such file"):
        load_trace(str(tmp_path / "missing.jsonl"))
    (tmp_path / "x.jsonl").write_text('{"timestamp": 0,\n')
    with pytest.raises(TraceError, match="line 1: not valid JSON"):
        load_trace(str(tmp_path / "x.jsonl"))
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(TraceError, match="cannot tell its format"):
        load_trace(str(tmp_path / "x.csv"))
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(TraceError, match="no requests in it"):
        load_trace(str(tmp_path / "e.jsonl"), "mooncake")


def trace_of(*requests: tuple[int, tuple[int, ...]], block: int = 4) -> Trace:
    return Trace(
        "t", "mooncake", tuple(TraceRequest(i, float(i), n, 2, ids) for i, (n, ids) in enumerate(requests)), block
    )


def test_ideal_cache_counts_leading_blocks_seen_before():
    trace = trace_of(
        # nothing before it
        (10, (1, 2, 3)),
        # blocks 1, 2 held: 8 tokens
        (12, (1, 2, 4)),
        # block 1: 4 tokens
        (6, (1, 5)),
        # 1 and 2 held, but never the last token: 7
        (8, (1, 2)),
        # a different first block: the chain breaks, nothing
        (7, (9, 2)),
        # request 0's prompt again: its third block held in part (2 of 2 tokens), less the last
        (10, (1, 2, 3)),
        # the third block was held only in part (2 tokens) before: 8 + 2
        (12, (1, 2, 3)),
    )
    assert ideal_cached_tokens(trace) == [0, 8, 4, 7, 0, 9, 10]
    assert hit_rate(ideal_cached_tokens(trace), trace) == pytest.approx(38 / 65)
    assert ideal_cached_tokens(trace_of((5, ()), (5, ()))) == [0, 0]


def test_trace_prompts_are_exact_and_share_exactly_their_hash_ids():
    trace = trace_of((30, (1, 2, 3, 4)), (25, (1, 2, 5, 6)), (32, (7, 8, 9, 10)), (27, (1, 2, 3, 11)), block=8)
    counter = PieceCounter()
    # the template (or BOS) and the lead word
    for chat, overhead in ((True, 8), (False, 2)):
        src = TracePrompts(counter, chat, trace, seed=3)
        prompts = [src.prompt_for(i) for i in range(4)]
        assert [counter.count(p.content, chat) for p in prompts] == [30, 25, 32, 27]
        assert [p.max_tokens for p in prompts] == [2, 2, 2, 2]
        words = [p.content.split() for p in prompts]
        # the template's tokens come off the first block
        first = 8 - overhead
        # blocks 1 and 2
        assert words[0][: first + 8] == words[1][: first + 8] == words[3][: first + 8]
        # and 3
        assert words[0][first + 8 : first + 16] == words[3][first + 8 : first + 16]
        # ids 3 and 5 differ
        assert words[0][first + 8 : first + 16] != words[1][first + 8 : first + 16]
        assert words[2][1:3] != words[0][1:3]
        assert [p.ideal_cached for p in prompts] == [0, 16, 0, 24]
        # a hit beyond the ideal: a warm cache
        assert [p.unique_from for p in prompts] == [0, 16, 0, 24]
    again = TracePrompts(PieceCounter(), True, trace, seed=3)
    assert again.prompt_for(1) == TracePrompts(counter, True, trace, seed=3).prompt_for(1)
    assert again.prompt_for(1).content != TracePrompts(counter, True, trace, seed=4).prompt_for(1).content


def test_a_tokenizer_that_disagrees_or_a_context_too_small_is_one_line():
    class Merging(PieceCounter):
        def count(self, content: str, chat: bool) -> int:
            # long texts counted otherwise
            return super().count(content, chat) + (len(content) > 1000)

    trace = trace_of((300, tuple(range(38))), block=8)
    with pytest.raises(PromptError, match=r"counts .* tokens in the prompt built for .*not its input_length 300"):
        TracePrompts(Merging(), True, trace)

    class Small(PieceCounter):
        max_model_len = 200

    with pytest.raises(PromptError, match="input_length 300 \\+ output_length 2 exceeds the model's context of 200"):
        TracePrompts(Small(), True, trace)
    with pytest.raises(PromptError, match="input_length 6 is shorter than the prompt's fixed part \\(8 tokens"):
        TracePrompts(PieceCounter(), True, trace_of((9, (1, 2, 3)), (6, (1, 2))))


def test_trace_prompts_with_a_real_tokenizer_are_exact(tiny_tokenizer):  # noqa: F811
    trace = trace_of(*((200 + 37 * i, tuple(range(i, i + math.ceil((200 + 37 * i) / 64)))) for i in range(6)), block=64)
    for chat in (True, False):
        src = TracePrompts(tiny_tokenizer, chat, trace)
        assert [tiny_tokenizer.count(src.prompt_for(i).content, chat) for i in range(6)] == [
            r.input_length for r in trace.requests
        ]


def test_the_generator_writes_a_valid_repeatable_trace_with_shared_prefixes(tmp_path):
    out = tmp_path / "gen.jsonl"
    assert make_trace([str(out), "--requests", "300", "--rate", "10", "--prefixes", "5", "--seed", "2"]) == 0
    trace = load_trace(str(out))
    assert len(trace.requests) == 300 and trace.format == "mooncake"
    assert trace.rate() == pytest.approx(10, rel=0.2)
    assert list(generate(300, 10, 5, seed=2)) == [json.loads(line) for line in out.read_text().splitlines()]
    # after the root block: the prefix chain's first block
    firsts = [r.hash_ids[1] for r in trace.requests]
    counts = sorted((firsts.count(f) for f in set(firsts)), reverse=True)
    # Zipf popularity
    assert len(counts) == 5 and counts[0] > 2 * counts[-1]
    assert 0.3 < hit_rate(ideal_cached_tokens(trace), trace) < 0.9
    assert make_trace([str(out), "--rate", "0"]) == 2


def test_a_sessions_next_turn_begins_with_its_previous_turn_block_for_block(tmp_path):
    path = tmp_path / "sessions.csv"
    path.write_text(
        "timestamp,input_tokens,output_tokens,session_id\n0,1100,5,a\n1,700,5,b\n2,2100,5,a\n3,900,5,\n4,600,5,a\n"
    )
    trace = load_trace(str(path), "azure", block_tokens=512)
    a1, b1, a2, solo, a3 = trace.requests
    # a1's two whole blocks, then new ones
    assert a2.hash_ids[:2] == a1.hash_ids[:2] and len(a2.hash_ids) == 5
    # as much of a2 as it is long
    assert a3.hash_ids[:1] == a2.hash_ids[:1] and len(a3.hash_ids) == 2
    assert not set(b1.hash_ids) & set(a1.hash_ids + a2.hash_ids) and solo.hash_ids == ()
    assert all(h < 0 for r in (a1, b1, a2, a3) for h in r.hash_ids)
    assert ideal_cached_tokens(trace) == [0, 0, 1024, 0, 512]
    src = TracePrompts(PieceCounter(), False, trace)
    first, second = src.prompt_for(0).content.split(), src.prompt_for(2).content.split()
    assert second[: 1024 - 1] == first[: 1024 - 1] and second[1023:1030] != first[1023:1030]
