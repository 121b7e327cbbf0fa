"""One streaming response, read by read: its push parser, and reading it in the caller's greenlet.

The reactor (``reactor.py``) reads responses in a greenlet of its own with the same parser; both give
the same errors. No timing rules here: those are ``measure.py``'s.
"""

from __future__ import annotations

from collections.abc import Callable

from llmclient import stamps
from llmclient.framing import Head, ResponseFraming
from llmclient.http import Connection
from llmclient.measure import StreamAccumulator
from llmclient.sse import SSEDecoder

_UNDECIDED, _EVENTS, _BODY, _ERROR = "", "events", "body", "error"


class ResponseReader:
    """One streaming response, head then body, read by read. No I/O.

    The framing is ``framing.ResponseFraming``'s. A 200's body goes through SSE
    decoding into the accumulator, each event dated by the read that completed it;
    any other status's body is kept (up to ``error_limit`` bytes) for its error
    message. ``feed`` returns True once the response is complete; it raises
    ProtocolError or TransportError on a garbled response.
    """

    __slots__ = ("_acc", "_body_parts", "_error_parts", "_error_size", "_framing", "_mode", "_sse", "error_limit")

    def __init__(self, acc: StreamAccumulator, error_limit: int = 65536) -> None:
        self._framing = ResponseFraming()
        self._acc = acc
        # what the body is, decided once its head arrived
        self._mode = _UNDECIDED
        # a 200's JSON answer, when the accumulator expects one (embeddings)
        self._body_parts: list[bytes] = []
        # a 200's event stream
        self._sse: SSEDecoder | None = None
        self._error_parts: list[bytes] = []
        self._error_size = 0
        self.error_limit = error_limit

    @property
    def head(self) -> Head | None:
        return self._framing.head

    def feed(self, data: bytes, t: float) -> bool:
        framing = self._framing
        payload = framing.feed(data)
        if payload:
            mode = self._mode or self._decide()
            if mode is _EVENTS:
                assert self._sse is not None
                on_event = self._acc.on_event
                for event in self._sse.feed(payload):
                    on_event(event, t)
            elif mode is _BODY:
                self._body_parts.append(payload)
            elif self._error_size < self.error_limit:
                piece = payload[: self.error_limit - self._error_size]
                self._error_parts.append(piece)
                self._error_size += len(piece)
        if framing.complete and self._mode is _BODY:
            self._acc.on_body(b"".join(self._body_parts), t)
        return framing.complete

    def _decide(self) -> str:
        """A 200's body is the event stream (or the one JSON answer); any other status's is its error."""
        if not self.streaming:
            self._mode = _ERROR
        elif self._acc.body:
            self._mode = _BODY
        else:
            self._mode = _EVENTS
            self._sse = SSEDecoder()
        return self._mode

    @property
    def complete(self) -> bool:
        return self._framing.complete

    @property
    def streaming(self) -> bool:
        """The response is a 200: its body is the event stream."""
        head = self._framing.head
        return head is not None and head.status == 200

    def eof_error(self) -> str:
        """What the connection closing now means: "" when the response may end there."""
        error = self._framing.eof_error()
        if error and self.streaming:
            return "connection closed in the middle of the stream"
        return error

    @property
    def incomplete_event(self) -> bool:
        return self._sse is not None and bool(self._sse.pending.strip())

    @property
    def error_body(self) -> bytes:
        return b"".join(self._error_parts)


def timed_out_message(seconds: float) -> str:
    return f"request timed out after {seconds:g} s"


def read_response(
    conn: Connection, reader: ResponseReader, clock: Callable[[], float], start: float, deadline_s: float | None
) -> str:
    """Read a response into ``reader`` in this greenlet, one timestamp per read; returns an error or ""."""
    data = conn.recv()
    t = stamps.arrival(clock, conn.arrived)
    while data:
        if reader.feed(data, t):
            return ""
        if deadline_s is not None and t - start > deadline_s:
            conn.close()
            return timed_out_message(deadline_s)
        data = conn.recv()
        t = stamps.arrival(clock, conn.arrived)
    conn.close()
    return reader.eof_error()
