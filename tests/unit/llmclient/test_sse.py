from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmclient.errors import ProtocolError
from llmclient.framing import ChunkedDecoder
from llmclient.sse import SSEDecoder


def chunked(*payloads: bytes) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in payloads) + b"0\r\n\r\n"


def feed_all(dec, pieces):
    out = []
    for piece in pieces:
        out.append(dec.feed(piece))
    return b"".join(out)


def test_chunked_whole_body_in_one_read():
    dec = ChunkedDecoder()
    assert dec.feed(chunked(b"hello ", b"world")) == b"hello world"
    assert dec.done


def test_chunked_split_at_every_position():
    body = chunked(b"data: a\n\n", b"data: bb\n\n", b"x" * 300)
    for cut in range(1, len(body)):
        dec = ChunkedDecoder()
        assert feed_all(dec, [body[:cut], body[cut:]]) == b"data: a\n\ndata: bb\n\n" + b"x" * 300, cut
        assert dec.done


def test_chunked_byte_by_byte_and_extensions():
    body = b"5;name=value\r\nhello\r\n0\r\n\r\n"
    dec = ChunkedDecoder()
    assert feed_all(dec, [body[i : i + 1] for i in range(len(body))]) == b"hello"
    assert dec.done


def test_chunked_rejects_bad_size_and_missing_crlf():
    with pytest.raises(ProtocolError):
        ChunkedDecoder().feed(b"zz\r\nhello\r\n")
    with pytest.raises(ProtocolError):
        ChunkedDecoder().feed(b"5\r\nhelloXX")


def test_sse_one_event_split_across_reads():
    dec = SSEDecoder()
    assert dec.feed(b'data: {"a"') == []
    assert dec.feed(b":1}\n") == []
    assert dec.feed(b"\n") == [b'{"a":1}']
    assert dec.pending == b""


def test_sse_several_events_in_one_read():
    dec = SSEDecoder()
    assert dec.feed(b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\ndata: par") == [b"1", b"2", b"[DONE]"]
    assert dec.pending == b"data: par"


def test_sse_crlf_comments_fields_and_multiline():
    dec = SSEDecoder()
    stream = b": keep-alive\r\n\r\nevent: message\r\ndata: a\r\ndata: b\r\n\r\ndata:no-space\r"
    assert dec.feed(stream) == [b"a\nb"]
    assert dec.feed(b"\n\r\n") == [b"no-space"]


def test_sse_event_without_data_is_skipped():
    assert SSEDecoder().feed(b"event: ping\n\nid: 3\n\ndata: x\n\n") == [b"x"]


EVENTS = st.lists(
    st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ")),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(EVENTS, st.lists(st.integers(min_value=1, max_value=50), max_size=30))
def test_random_splits_give_the_same_events(events, cuts):
    """Whatever the read boundaries, chunked SSE decodes to the same events, in order."""
    payloads = [b"data: " + e.lstrip(b" ") + b"\n\n" for e in events]
    body = chunked(*payloads)
    pieces, pos = [], 0
    for c in cuts:
        pieces.append(body[pos : pos + c])
        pos += c
    pieces.append(body[pos:])
    chunk_dec, sse_dec, out = ChunkedDecoder(), SSEDecoder(), []
    for piece in pieces:
        if piece:
            out.extend(sse_dec.feed(chunk_dec.feed(piece)))
    assert out == [e.lstrip(b" ") for e in events]
    assert chunk_dec.done


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_never_crashes_with_anything_but_protocol_error(garbage):
    dec, sse = ChunkedDecoder(), SSEDecoder()
    with contextlib.suppress(ProtocolError):
        sse.feed(dec.feed(garbage))
