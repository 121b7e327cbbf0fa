"""One streaming request, timed: the hot path of the suite.

No Locust import. ``clock`` is monotonic seconds and ``wall`` unix seconds;
both are injectable so tests can script them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from users.http import MAX_HEAD, Connection, Head, TransportError, parse_head
from users.record import CHAT_TEXT_KEYS, COMPLETION_TEXT_KEYS, RequestRecord, StreamAccumulator
from users.sse import ChunkedDecoder, ProtocolError, SSEDecoder


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    path: str
    text_keys: tuple[bytes, ...]


CHAT = Endpoint("chat", "/v1/chat/completions", CHAT_TEXT_KEYS)
CANCELLED = "cancelled: the test stopped while the request was in flight"

COMPLETIONS = Endpoint("completions", "/v1/completions", COMPLETION_TEXT_KEYS)
ENDPOINTS = {e.name: e for e in (CHAT, COMPLETIONS)}


def build_payload(
    endpoint: Endpoint,
    model: str,
    prompt: str | list[dict[str, str]],  # a user message, or the whole conversation
    max_tokens: int,
    *,
    ignore_eos: bool = False,
    temperature: float | None = None,
) -> bytes:
    """The JSON body of a streaming request, with usage requested at the end."""
    body: dict[str, object] = {"model": model}
    if endpoint is CHAT:
        body["messages"] = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    body["max_tokens"] = max_tokens
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    if ignore_eos:
        body["ignore_eos"] = True
    if temperature is not None:
        body["temperature"] = temperature
    return orjson.dumps(body)


class BodyFraming:
    """Where a response body ends: its chunked encoding, its Content-Length, or (with
    neither) the connection's close. ``payload`` strips the framing from each read."""

    __slots__ = ("_chunked", "_remaining")

    def __init__(self, head: Head) -> None:
        self._chunked = ChunkedDecoder() if head.chunked else None
        self._remaining = None if self._chunked is not None else head.content_length

    def payload(self, data: bytes) -> bytes:
        if self._chunked is not None:
            return self._chunked.feed(data)
        if self._remaining is not None:
            data = data[: self._remaining]
            self._remaining -= len(data)
        return data

    @property
    def complete(self) -> bool:
        if self._chunked is not None:
            return self._chunked.done
        return self._remaining is not None and self._remaining <= 0

    @property
    def cut_short(self) -> bool:
        """Whether the connection closing now would cut the body short."""
        return not self.complete and (self._chunked is not None or self._remaining is not None)


class StreamBody:
    """Feeds one streamed response body into an accumulator, read by read. No I/O.

    ``feed`` returns True once the body is complete (the terminating chunk, or
    Content-Length reached); it raises ProtocolError on broken framing.
    """

    __slots__ = ("_framing", "_on_event", "_sse")

    def __init__(self, head: Head, acc: StreamAccumulator) -> None:
        self._framing = BodyFraming(head)
        self._sse = SSEDecoder()
        self._on_event = acc.on_event

    def feed(self, data: bytes, t: float) -> bool:
        framing = self._framing
        payload = framing.payload(data)
        if payload:
            on_event = self._on_event
            for event in self._sse.feed(payload):
                on_event(event, t)
        return framing.complete

    @property
    def complete(self) -> bool:
        return self._framing.complete

    def eof_error(self) -> str:
        """What a connection closed now would mean: "" when the body may end at EOF."""
        return "connection closed in the middle of the stream" if self._framing.cut_short else ""

    @property
    def incomplete_event(self) -> bool:
        return bool(self._sse.pending.strip())


class ErrorBody:
    """Collects the body of a non-200 response (up to ``limit`` bytes) for its error message."""

    __slots__ = ("_framing", "_parts", "_size", "limit")

    def __init__(self, head: Head, limit: int = 65536) -> None:
        self._framing = BodyFraming(head)
        self._parts: list[bytes] = []
        self._size = 0
        self.limit = limit

    @property
    def complete(self) -> bool:
        return self._framing.complete

    def feed(self, data: bytes, _t: float) -> bool:
        data = self._framing.payload(data)
        if self._size < self.limit:
            self._parts.append(data[: self.limit - self._size])
            self._size += len(self._parts[-1])
        return self._framing.complete

    def eof_error(self) -> str:
        # with no length given, the body ends with the connection
        return "connection closed in the middle of the response body" if self._framing.cut_short else ""

    @property
    def data(self) -> bytes:
        return b"".join(self._parts)


class ResponseReader:
    """Feeds one whole response, head then body, read by read. No I/O.

    Lets the reactor read a response from the moment the request is written, so
    neither the head nor a first token that comes with it waits for the user's
    greenlet. A 200 goes to a StreamBody (timed SSE), any other status to an
    ErrorBody. ``feed`` returns True once the response is complete; it raises
    ProtocolError or TransportError on a garbled response.
    """

    __slots__ = ("_acc", "_buf", "body", "head")

    def __init__(self, acc: StreamAccumulator) -> None:
        self._acc = acc
        self._buf = b""
        self.head: Head | None = None
        self.body: StreamBody | ErrorBody | None = None

    def feed(self, data: bytes, t: float) -> bool:
        body = self.body
        if body is None:
            buf = self._buf + data if self._buf else data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise TransportError("response headers too large")
                self._buf = buf
                return False
            self._buf = b""
            head = self.head = parse_head(buf[:end])
            body = self.body = StreamBody(head, self._acc) if head.status == 200 else ErrorBody(head)
            data = buf[end + 4 :]
            if not data:
                return body.complete
        return body.feed(data, t)

    def eof_error(self) -> str:
        if self.body is None:
            if self._buf:
                return "connection closed in the middle of the response headers"
            return "connection closed before the response headers"
        return self.body.eof_error()

    @property
    def incomplete_event(self) -> bool:
        return isinstance(self.body, StreamBody) and self.body.incomplete_event


def timed_out_message(seconds: float) -> str:
    return f"request timed out after {seconds:g} s"


def read_response(
    conn: Connection, body: ResponseReader, clock: Callable[[], float], start: float, deadline_s: float | None
) -> str:
    """Read a response into ``body`` (a ResponseReader) in this greenlet, one timestamp per read;
    returns an error or ""."""
    data = conn.recv()
    t = conn.arrival(clock())
    while data:
        if body.feed(data, t):
            return ""
        if deadline_s is not None and t - start > deadline_s:
            conn.close()
            return timed_out_message(deadline_s)
        data = conn.recv()
        t = conn.arrival(clock())
    conn.close()
    return body.eof_error()


def stream_request(
    conn: Connection,
    endpoint: Endpoint,
    payload: bytes,
    headers: dict[str, str],
    *,
    clock: Callable[[], float] = time.perf_counter,
    wall: Callable[[], float] = time.time,
    deadline_s: float | None = None,
    record: RequestRecord | None = None,
    collect_text: bool = False,
    reactor: object | None = None,
) -> RequestRecord:
    """Send one streaming request and time every SSE event as its bytes arrive.

    Never raises for a failed request: the record says what went wrong.
    ``deadline_s`` bounds the whole request (``--request-timeout``). When the
    caller is interrupted (the test stops, Ctrl-C), the ``record`` it passed in
    is closed as cancelled, keeping what was measured, and the interruption
    propagates. With a ``reactor`` (see users/reactor.py) the body is read by
    one shared greenlet for all streams instead of by this one; either way a
    ``ResponseReader`` parses the response, head included.
    """
    if record is None:
        record = RequestRecord()
    raw = conn.build_request("POST", endpoint.path, payload, headers)
    record.start_time = wall()
    start = clock()
    acc = StreamAccumulator(record, start, endpoint.text_keys, collect_text)
    try:
        conn.send(raw)
        reader = ResponseReader(acc)
        if reactor is not None and reactor.accepts(conn):
            error = reactor.read_response(conn, reader, clock, start, deadline_s)
        else:
            error = read_response(conn, reader, clock, start, deadline_s)
        return _finish(conn, acc, reader, error)
    except TransportError as exc:
        conn.close()
        return acc.finish(str(exc))
    except ProtocolError as exc:
        conn.close()
        return acc.finish(f"bad stream framing: {exc}")
    except BaseException:  # interrupted from outside: keep the sample, then let it through
        conn.close()
        acc.finish(CANCELLED)
        record.cancelled = True
        raise


def _finish(conn: Connection, acc: StreamAccumulator, reader: ResponseReader, error: str) -> RequestRecord:
    """Close the record from a response read to its end (or to ``error``)."""
    head = reader.head
    if head is not None:
        acc.record.status = head.status
    if error or head is None:
        return acc.finish(error or "connection closed before the response headers")
    if head.headers.get("connection", "").lower() == "close":
        conn.close()
    if isinstance(reader.body, ErrorBody):
        return acc.finish(_http_error(head.status, head.reason, reader.body.data))
    if reader.incomplete_event:
        return acc.finish("stream ended inside an incomplete event")
    return acc.finish()


def _http_error(status: int, reason: str, body: bytes) -> str:
    message = ""
    try:
        obj = orjson.loads(body)
        if isinstance(obj, dict):
            err = obj.get("error", obj)
            if isinstance(err, dict):
                message = str(err.get("message") or err.get("detail") or "")
            elif isinstance(err, str):
                message = err
            if not message and "detail" in obj:
                message = str(obj["detail"])
    except orjson.JSONDecodeError:
        message = body[:200].decode("utf-8", "replace").strip()
    message = " ".join(message.split())[:300]
    return f"HTTP {status} {reason}".rstrip() + (f": {message}" if message else "")
