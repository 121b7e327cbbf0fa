"""Incremental decoders for an HTTP/1.1 chunked body carrying Server-Sent Events.

Plain Python, no Locust and no I/O: bytes go in as they arrive, complete SSE
``data:`` payloads come out. Both decoders keep only the unfinished tail of the
previous read, so an event split across reads, or several events in one read,
come out exactly once and in order.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """The byte stream is not valid HTTP chunked framing or SSE."""


class ChunkedDecoder:
    """Removes HTTP/1.1 chunked transfer-encoding framing.

    ``feed`` returns the payload bytes completed by this read; ``done`` turns
    true after the terminating zero-length chunk.
    """

    __slots__ = ("_buf", "_crlf_left", "_payload_left", "done")

    def __init__(self) -> None:
        self._buf = b""
        self._payload_left = 0  # payload bytes still owed by the current chunk
        self._crlf_left = 0  # bytes of the CRLF after the payload still to skip
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
                self.done = True  # trailers, if any, are ignored
            else:
                self._payload_left = size
        if len(out) == 1:
            return out[0]
        return b"".join(out)


class SSEDecoder:
    """Splits an SSE byte stream into the payloads of its ``data:`` fields.

    Handles ``\\n``, ``\\r\\n`` line ends, comment lines (``:``), other fields
    (``event:``, ``id:``), and multi-line data, which is joined with ``\\n`` as
    the SSE specification says. Returns one payload per dispatched event.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf + data if self._buf else data
        if b"\r" in buf:
            # Normalise CRLF (and lone CR) so the fast path below only sees LF.
            # A CR at the very end may be half of a CRLF: keep it for later.
            if buf.endswith(b"\r"):
                self._buf = b"\r"
                buf = buf[:-1]
            else:
                self._buf = b""
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if self._buf:
                return self._split(buf, keep_cr=True)
        return self._split(buf, keep_cr=False)

    def _split(self, buf: bytes, keep_cr: bool) -> list[bytes]:
        events: list[bytes] = []
        start = 0
        while True:
            sep = buf.find(b"\n\n", start)
            if sep < 0:
                break
            block = buf[start:sep]
            start = sep + 2
            if block.startswith(b"data: ") and b"\n" not in block:
                events.append(block[6:])  # the common case: one data line
                continue
            payload = _parse_block(block)
            if payload is not None:
                events.append(payload)
        rest = buf[start:]
        self._buf = rest + b"\r" if keep_cr else rest
        return events

    @property
    def pending(self) -> bytes:
        """Bytes received that do not yet form a complete event."""
        return self._buf


def _parse_block(block: bytes) -> bytes | None:
    data_lines = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data_lines.append(value)
    if not data_lines:
        return None
    return b"\n".join(data_lines)
