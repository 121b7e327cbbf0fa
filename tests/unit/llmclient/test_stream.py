"""The timed request path against a scripted server and a scripted clock: exact numbers."""

from __future__ import annotations

import json

import pytest

from llmclient.stream import CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, build_payload, stream_request
from tests.unit.llmclient.scripted import END, HEAD, FakeClock, chat_chunk, frame, scripted_connection, usage_chunk


def run(reads, endpoint=CHAT):
    clock = FakeClock()
    conn, sock = scripted_connection(clock, reads)
    rec = stream_request(conn, endpoint, b"{}", {}, clock=clock, wall=lambda: 1000.0)
    return rec, sock


def test_role_chunk_does_not_count_and_usage_gives_the_counts():
    rec, _ = run(
        [
            # role-only, sent at once
            (0.010, HEAD + frame(chat_chunk("", role="assistant"))),
            (0.200, frame(chat_chunk("Hello"))),
            (0.250, frame(chat_chunk(" world"))),
            (0.300, frame(chat_chunk("!", finish="stop"))),
            (0.310, frame(usage_chunk(100, 3, cached=64), b"[DONE]") + END),
        ]
    )
    assert rec.success, rec.error
    assert rec.ttft_s == pytest.approx(0.200)
    assert rec.itl_s == pytest.approx([0.050, 0.050])
    # usage chunk and [DONE] excluded
    assert rec.e2e_s == pytest.approx(0.300)
    assert (rec.prompt_tokens, rec.cached_tokens, rec.output_tokens) == (100, 64, 3)
    assert rec.usage_source == "server"
    # (0.300 - 0.200) / (3 - 1)
    assert rec.tpot_s == pytest.approx(0.050)
    assert rec.decode_tps == pytest.approx(20.0)
    assert rec.finish_reason == "stop"
    assert rec.request_id == "c-1"
    assert rec.start_time == 1000.0


def test_empty_content_chunks_are_not_tokens():
    rec, _ = run(
        [
            (0.1, HEAD + frame(chat_chunk(""), chat_chunk(None))),
            (0.4, frame(chat_chunk("a"))),
            (0.5, frame(chat_chunk("b"), chat_chunk("", finish="length"), usage_chunk(5, 2), b"[DONE]") + END),
        ]
    )
    assert rec.ttft_s == pytest.approx(0.4)
    assert rec.itl_s == pytest.approx([0.1])
    assert rec.e2e_s == pytest.approx(0.5)
    assert rec.output_tokens == 2
    assert rec.finish_reason == "length"


def test_several_events_in_one_read_share_its_time():
    rec, _ = run(
        [(0.2, HEAD + frame(chat_chunk("a"), chat_chunk("b"), chat_chunk("c"), usage_chunk(5, 3), b"[DONE]") + END)]
    )
    assert rec.ttft_s == pytest.approx(0.2)
    assert rec.itl_s == [0.0, 0.0]
    assert rec.tpot_s == 0.0 and rec.decode_tps is None


def test_an_event_split_across_reads_is_timed_when_complete():
    whole = frame(chat_chunk("token"))
    rec, _ = run([(0.1, HEAD + whole[:25]), (0.3, whole[25:]), (0.4, frame(usage_chunk(5, 1), b"[DONE]") + END)])
    assert rec.ttft_s == pytest.approx(0.3)
    assert rec.output_tokens == 1 and rec.tpot_s is None


def test_headers_and_first_token_in_the_same_read():
    rec, _ = run([(0.05, HEAD + frame(chat_chunk("a"))), (0.07, frame(chat_chunk("b"), b"[DONE]") + END)])
    assert rec.ttft_s == pytest.approx(0.05)


def test_without_usage_chunks_are_counted_and_marked():
    rec, _ = run([(0.1, HEAD + frame(chat_chunk("a"))), (0.2, frame(chat_chunk("b"), b"[DONE]") + END)])
    assert rec.success
    assert rec.output_tokens == 2 and rec.usage_source == "chunks"
    assert rec.prompt_tokens is None and rec.cached_tokens is None


def test_reasoning_content_counts_as_text():
    rec, _ = run(
        [
            (0.1, HEAD + frame(chat_chunk("think", key="reasoning_content"))),
            (0.2, frame(chat_chunk("answer"), usage_chunk(3, 2), b"[DONE]") + END),
        ]
    )
    assert rec.ttft_s == pytest.approx(0.1) and rec.output_tokens == 2
    assert rec.answer_ttft_s == pytest.approx(0.2) and rec.reasoning_tokens == 1


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_a_reasoning_models_answer_is_timed_apart_and_its_reasoning_counted(key):
    # the fast path (finish_reason null) and the full parse (the last chunk) both tell reasoning from answer
    rec, _ = run(
        [
            (0.1, HEAD + frame(chat_chunk("", role="assistant"), chat_chunk("hmm", key=key))),
            (0.2, frame(chat_chunk("so", key=key))),
            (0.5, frame(chat_chunk("The"))),
            (0.6, frame(chat_chunk(" end", finish="stop"), b"[DONE]") + END),
        ]
    )
    assert rec.ttft_s == pytest.approx(0.1) and rec.answer_ttft_s == pytest.approx(0.5)
    assert rec.reasoning_tokens == 2 and rec.output_tokens == 4 and rec.usage_source == "chunks"
    usage = json.loads(usage_chunk(10, 40))
    usage["usage"]["completion_tokens_details"] = {"reasoning_tokens": 30}
    told, _ = run(
        [
            (0.1, HEAD + frame(chat_chunk("x", key=key))),
            (0.3, frame(chat_chunk("y"), json.dumps(usage).encode(), b"[DONE]") + END),
        ]
    )
    # the server's usage, where it says
    assert told.reasoning_tokens == 30


def test_a_plain_answer_has_its_answer_ttft_and_no_reasoning_tokens():
    rec, _ = run([(0.1, HEAD + frame(chat_chunk("a"))), (0.2, frame(chat_chunk("b"), b"[DONE]") + END)])
    assert rec.answer_ttft_s == rec.ttft_s == pytest.approx(0.1) and rec.reasoning_tokens is None


def test_completions_text_chunks():
    def chunk(text, finish=None):
        return (
            b'{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":'
            + (b'"%s"' % text.encode())
            + b',"logprobs":null,"finish_reason":'
            + (b'"%s"' % finish.encode() if finish else b"null")
            + b"}]}"
        )

    rec, _ = run(
        [
            (0.1, HEAD + frame(chunk(""))),
            (0.2, frame(chunk("x"))),
            (0.3, frame(chunk("y", "length"))),
            (0.3, frame(usage_chunk(4, 2), b"[DONE]") + END),
        ],
        endpoint=COMPLETIONS,
    )
    assert rec.ttft_s == pytest.approx(0.2) and rec.e2e_s == pytest.approx(0.3) and rec.output_tokens == 2


def test_content_length_body_and_no_chunking():
    body = b"".join(b"data: " + e + b"\n\n" for e in (chat_chunk("a"), chat_chunk("b"), b"[DONE]"))
    head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body)
    rec, _ = run([(0.1, head + body[:40]), (0.2, body[40:])])
    assert rec.success and rec.output_tokens == 2


def test_an_embeddings_answer_is_one_json_body_timed_to_its_last_byte():
    body = json.dumps(
        {
            "id": "embd-1",
            "object": "list",
            "data": [{"embedding": [0.1] * 300}],
            "usage": {"prompt_tokens": 200, "total_tokens": 200},
        }
    ).encode()
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
    rec, _ = run([(0.1, head + body[:100]), (0.3, body[100:])], EMBEDDINGS)
    assert rec.success, rec.error
    assert rec.e2e_s == pytest.approx(0.3) and rec.ttft_s is None and rec.itl_s == [] and rec.tpot_s is None
    assert (rec.request_id, rec.prompt_tokens, rec.output_tokens) == ("embd-1", 200, None)
    bad = b'{"error":{"message":"input too long","code":400}}'
    cut = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(bad)
    failed, _ = run([(0.1, cut + bad)], EMBEDDINGS)
    assert not failed.success and failed.error == "server error: input too long (code 400)"


# vLLM's spelling: the fast path's; json's default spaces: the full parse's
COMPACT = {"separators": (",", ":")}


@pytest.mark.parametrize("spelling", [COMPACT, {}], ids=["fast-path", "full-parse"])
def test_the_responses_apis_events_are_timed_as_chat_chunks_are_and_a_failed_response_is_a_failure(spelling):
    def response_event(kind: str, **fields: object) -> bytes:
        return json.dumps({"type": kind, **fields}, **spelling).encode()

    delta = response_event("response.output_text.delta", item_id="msg_1", delta="Hi")
    # which path the answer's deltas take
    assert (RESPONSES.fast_mark in delta) == (spelling == COMPACT)
    created = response_event("response.created", response={"id": "resp_1", "status": "in_progress"})
    usage = {
        "input_tokens": 50,
        "output_tokens": 3,
        "input_tokens_details": {"cached_tokens": 32},
        "output_tokens_details": {"reasoning_tokens": 1},
    }
    rec, _ = run(
        [
            (0.05, HEAD + frame(created)),
            (0.1, frame(response_event("response.reasoning_text.delta", delta="hm"))),
            (0.2, frame(response_event("response.output_text.delta", delta="Hi"))),
            (0.3, frame(response_event("response.output_text.delta", delta="!"))),
            (
                0.31,
                frame(
                    response_event(
                        "response.completed", response={"id": "resp_1", "status": "completed", "usage": usage}
                    )
                )
                + END,
            ),
        ],
        RESPONSES,
    )
    # no [DONE]: response.completed ends it
    assert rec.success, rec.error
    assert (rec.request_id, rec.ttft_s, rec.answer_ttft_s, rec.e2e_s) == (
        "resp_1",
        pytest.approx(0.1),
        pytest.approx(0.2),
        pytest.approx(0.3),
    )
    assert (rec.prompt_tokens, rec.cached_tokens, rec.output_tokens, rec.reasoning_tokens) == (50, 32, 3, 1)
    failed, _ = run(
        [
            (
                0.1,
                HEAD
                + frame(
                    created,
                    response_event(
                        "response.failed",
                        response={
                            "id": "resp_1",
                            "status": "failed",
                            "error": {"message": "out of memory", "code": "server_error"},
                        },
                    ),
                )
                + END,
            )
        ],
        RESPONSES,
    )
    assert not failed.success and failed.error == "server error in stream: out of memory (code server_error)"


def test_http_error_carries_the_server_message():
    body = b'{"error":{"message":"too many requests, slow down","type":"RateLimitError","code":429}}'
    rec, _ = run([(0.1, b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: %d\r\n\r\n" % len(body) + body)])
    assert not rec.success
    assert rec.status == 429
    assert rec.error == "HTTP 429 Too Many Requests: too many requests, slow down"
    assert rec.ttft_s is None


def test_stream_without_done_fails_but_keeps_what_it_measured():
    rec, _ = run([(0.1, HEAD + frame(chat_chunk("a"))), (0.2, frame(chat_chunk("b")) + END)])
    assert not rec.success and rec.error == "stream ended without [DONE]"
    assert rec.ttft_s == pytest.approx(0.1) and rec.output_tokens == 2


def test_error_frame_in_stream_fails_the_request():
    rec, _ = run(
        [
            (0.1, HEAD + frame(chat_chunk("a"))),
            (0.2, frame(b'{"error":{"message":"engine died","code":500}}', b"[DONE]") + END),
        ]
    )
    assert not rec.success and rec.error == "server error in stream: engine died (code 500)"
    assert rec.ttft_s == pytest.approx(0.1)


def test_malformed_json_fails_the_request():
    rec, _ = run(
        [(0.1, HEAD + frame(chat_chunk("a"), b'{"choices":[{"delta":{"content":"x')), (0.2, frame(b"[DONE]") + END)]
    )
    assert not rec.success and rec.error.startswith("malformed JSON in stream")


def test_stream_with_no_token_fails():
    rec, _ = run([(0.1, HEAD + frame(chat_chunk("", role="assistant"), usage_chunk(5, 0), b"[DONE]") + END)])
    assert not rec.success and rec.error == "stream carried no tokens"


def test_reset_mid_stream_fails_and_keeps_ttft():
    rec, sock = run([(0.1, HEAD + frame(chat_chunk("a"))), (0.2, ConnectionResetError(104, "reset"))])
    assert not rec.success and rec.error == "connection broken mid-response: connection reset by peer"
    assert rec.ttft_s == pytest.approx(0.1) and rec.output_tokens == 1
    assert sock.closed


def test_connection_closed_mid_stream():
    rec, _ = run([(0.1, HEAD + frame(chat_chunk("a")))])
    assert not rec.success and rec.error == "connection closed in the middle of the stream"


def test_stall_is_a_timeout_failure():
    rec, _ = run([(0.1, HEAD + frame(chat_chunk("a"))), (5.0, TimeoutError())])
    assert not rec.success and rec.error.startswith("stalled: no data for")


def test_request_is_written_with_host_and_length():
    _, sock = run([(0.1, HEAD + frame(chat_chunk("a"), b"[DONE]") + END)])
    assert sock.sent.startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:9\r\n")
    assert b"Content-Length: 2\r\n\r\n{}" in sock.sent


def test_payload_asks_for_streamed_usage():
    import json

    body = json.loads(build_payload(CHAT, "m", "hi", 7, ignore_eos=True, temperature=0.0))
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
        "temperature": 0.0,
    }
    assert json.loads(build_payload(COMPLETIONS, "m", "hi", 7))["prompt"] == "hi"
