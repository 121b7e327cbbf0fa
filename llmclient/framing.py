"""HTTP/1.1 response framing, sans I/O: bytes in as they arrive, the head and the body's payload out.

One implementation for every reader of the suite, in the manner of h11: the blocking
connection's control calls (``http.Connection.request``) and the streaming reads (in a
user's greenlet or in the reactor) all feed a ``ResponseFraming``. A body ends by its
chunked encoding, by its Content-Length, or (with neither) by the connection's close.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmclient.errors import ProtocolError, TransportError

MAX_HEAD = 65536
NO_BODY_STATUSES = frozenset({204, 304})


@dataclass(slots=True)
class Head:
    status: int
    reason: str
    # lower-case names
    headers: dict[str, str]

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def content_length(self) -> int | None:
        if self.status in NO_BODY_STATUSES:
            return 0
        value = self.headers.get("content-length")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def closes(self) -> bool:
        """The server closes the connection after this response."""
        return self.headers.get("connection", "").lower() == "close"


def parse_head(raw: bytes) -> Head:
    """The status line and headers (without the blank line). Raises TransportError."""
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise TransportError(f"not an HTTP response: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Head(int(parts[1]), parts[2] if len(parts) > 2 else "", headers)


class ChunkedDecoder:
    """Removes HTTP/1.1 chunked transfer-encoding framing.

    ``feed`` returns the payload bytes completed by this read; ``done`` turns
    true after the terminating zero-length chunk.
    """

    __slots__ = ("_buf", "_crlf_left", "_payload_left", "done")

    def __init__(self) -> None:
        self._buf = b""
        # payload bytes still owed by the current chunk
        self._payload_left = 0
        # bytes of the CRLF after the payload still to skip
        self._crlf_left = 0
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buf = self._buf + data if self._buf else data
        self._buf = b""
        out: list[bytes] = []
        pos = 0
        end = len(buf)
        while pos < end and not self.done:
            if self._payload_left:
                take = min(self._payload_left, end - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self._payload_left -= take
                if not self._payload_left:
                    self._crlf_left = 2
                continue
            if self._crlf_left:
                expected = b"\r\n"[2 - self._crlf_left :]
                take = min(self._crlf_left, end - pos)
                if buf[pos : pos + take] != expected[:take]:
                    raise ProtocolError("chunk payload is not followed by CRLF")
                pos += take
                self._crlf_left -= take
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if end - pos > 256:
                    raise ProtocolError("chunk size line too long")
                self._buf = buf[pos:]
                break
            size_text = buf[pos:eol].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {bytes(size_text[:20])!r}") from None
            if size < 0:
                raise ProtocolError("negative chunk size")
            pos = eol + 2
            if size == 0:
                # trailers, if any, are ignored
                self.done = True
            else:
                self._payload_left = size
        if len(out) == 1:
            return out[0]
        return b"".join(out)


class ResponseFraming:
    """One response, read by read: ``feed`` returns the body payload that the bytes complete.

    ``head`` is set once the head is complete; ``complete`` turns true at the end of the
    body. Raises TransportError on a garbled or oversized head, ProtocolError on broken
    chunked framing. Bytes after the end of the body are dropped (no pipelining).
    """

    __slots__ = ("_buf", "_chunked", "_remaining", "head")

    def __init__(self) -> None:
        self._buf = b""
        self.head: Head | None = None
        self._chunked: ChunkedDecoder | None = None
        # Content-Length still owed; None: chunked or until close
        self._remaining: int | None = None

    def feed(self, data: bytes) -> bytes:
        if self.head is None:
            buf = self._buf + data if self._buf else data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise TransportError("response headers too large")
                self._buf = buf
                return b""
            self._buf = b""
            head = self.head = parse_head(buf[:end])
            if head.chunked:
                self._chunked = ChunkedDecoder()
            else:
                self._remaining = head.content_length
            data = buf[end + 4 :]
            if not data:
                return b""
        if self._chunked is not None:
            return self._chunked.feed(data)
        if self._remaining is not None:
            data = data[: self._remaining]
            self._remaining -= len(data)
        return data

    @property
    def complete(self) -> bool:
        if self.head is None:
            return False
        if self._chunked is not None:
            return self._chunked.done
        return self._remaining is not None and self._remaining <= 0

    @property
    def ends_at_close(self) -> bool:
        """The body has neither chunked encoding nor a length: it ends when the server closes."""
        return self.head is not None and self._chunked is None and self._remaining is None

    def eof_error(self) -> str:
        """What the connection closing now means: "" when the response may end there."""
        if self.head is None:
            if self._buf:
                return "connection closed in the middle of the response headers"
            return "connection closed before the response headers"
        if self.complete or self.ends_at_close:
            return ""
        return "connection closed in the middle of the response body"
