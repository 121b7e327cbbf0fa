"""Server-Sent Events, sans I/O: body payload in as it arrives, complete ``data:`` payloads out.

Keeps only the unfinished tail of the previous read, so an event split across reads,
or several events in one read, come out exactly once and in order. (The HTTP body
framing underneath is ``framing.py``'s.)
"""

from __future__ import annotations


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
                # the common case: one data line
                events.append(block[6:])
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
