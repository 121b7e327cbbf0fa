"""The reactor's push parser for a whole response: head, then the SSE body or an error body."""

from __future__ import annotations

import socket

import gevent
import pytest

from llmclient.http import Connection, Target, TransportError
from llmclient.measure import RequestRecord, StreamAccumulator
from llmclient.reactor import StreamReactor
from llmclient.response import ResponseReader
from llmclient.stream import CHAT, stream_request
from tests.unit.llmclient.scripted import END, HEAD, chat_chunk, frame, usage_chunk


def reader() -> tuple[ResponseReader, StreamAccumulator]:
    acc = StreamAccumulator(RequestRecord(), 0.0)
    return ResponseReader(acc), acc


def test_a_head_split_across_reads_then_a_timed_stream():
    r, acc = reader()
    body = frame(chat_chunk("a")) + frame(chat_chunk("b", finish="length"), usage_chunk(3, 2), b"[DONE]") + END
    assert r.feed(HEAD[:10], 0.01) is False and r.head is None
    # head complete, first event not yet
    assert r.feed(HEAD[10:] + body[:30], 0.02) is False
    assert r.head.status == 200 and r.streaming
    assert r.feed(body[30:], 0.05) is True
    rec = acc.finish()
    assert rec.success and rec.ttft_s == 0.05 and rec.output_tokens == 2 and not r.incomplete_event


def test_head_and_first_token_in_one_read_share_its_time():
    r, acc = reader()
    assert r.feed(HEAD + frame(chat_chunk("a")), 0.03) is False
    assert r.feed(frame(chat_chunk("b"), usage_chunk(3, 2), b"[DONE]") + END, 0.04) is True
    assert acc.finish().ttft_s == 0.03


@pytest.mark.parametrize(
    ("raw", "complete"),
    [
        (b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 19\r\n\r\n" + b'{"detail":"boom!!"}', True),
        (
            b"HTTP/1.1 429 Too Many Requests\r\ntransfer-encoding: chunked\r\n\r\n13\r\n"
            + b'{"detail":"boom!!"}'
            + b"\r\n0\r\n\r\n",
            True,
        ),
        (
            b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\r\n" + b'{"detail":"boom!!"}',
            False,
            # ends at EOF
        ),
    ],
)
def test_an_error_status_keeps_its_body(raw, complete):
    r, _ = reader()
    assert r.feed(raw, 0.1) is complete
    assert not r.streaming and r.error_body == b'{"detail":"boom!!"}'
    # no length: the connection's end is the body's end, not a failure
    if not complete:
        assert r.eof_error() == ""


def test_an_error_body_cut_short_is_a_transport_failure():
    r, _ = reader()
    assert r.feed(b"HTTP/1.1 500 Oops\r\ncontent-length: 100\r\n\r\nshort", 0.1) is False
    assert r.eof_error() == "connection closed in the middle of the response body"


def test_an_empty_error_body_is_complete_with_the_head():
    r, _ = reader()
    assert r.feed(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n", 0.1) is True


def test_eof_before_or_inside_the_head():
    r, _ = reader()
    assert r.eof_error() == "connection closed before the response headers"
    r.feed(b"HTTP/1.1 200", 0.1)
    assert r.eof_error() == "connection closed in the middle of the response headers"


def test_garbled_or_oversized_heads_fail():
    r, _ = reader()
    with pytest.raises(TransportError, match="not an HTTP response"):
        r.feed(b"SSH-2.0-OpenSSH\r\n\r\n", 0.1)
    r, _ = reader()
    with pytest.raises(TransportError, match="too large"):
        r.feed(b"HTTP/1.1 200 OK\r\nx: " + b"y" * 70000, 0.1)


def reply_once(raw: bytes) -> tuple[int, gevent.Greenlet]:
    """A loopback server that answers one request with ``raw`` and closes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def run() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(raw)
        conn.close()
        server.close()

    return server.getsockname()[1], gevent.spawn(run)


@pytest.mark.parametrize("reactor", [None, StreamReactor()], ids=["own-greenlet", "reactor"])
@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP response: 'SSH-2.0-OpenSSH_9.6'"),
        (
            b"HTTP/1.1 503 Service Unavailable\r\n\r\n" + b'{"detail":"overloaded"}',
            "HTTP 503 Service Unavailable: overloaded",
        ),
        (
            b"HTTP/1.1 500 Oops\r\ncontent-length: 50\r\n\r\nshort",
            "connection closed in the middle of the response body",
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + frame(chat_chunk("a")),
            "connection closed in the middle of the stream",
        ),
        (b"", "connection closed before the response headers"),
    ],
)
def test_both_readers_fail_the_same_way_with_a_clear_reason(raw, error, reactor):
    port, server = reply_once(raw)
    conn = Connection(Target.parse(f"http://127.0.0.1:{port}"))
    rec = stream_request(conn, CHAT, b"{}", {}, reactor=reactor)
    server.join(timeout=5)
    assert not rec.success and rec.error == error
    # closed: the next request starts on a fresh connection
    assert conn._sock is None
