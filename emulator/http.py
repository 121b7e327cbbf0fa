"""The emulator's HTTP/1.1 connections: requests parsed one at a time, responses whole or chunked.

Written on asyncio protocols rather than a web framework so that one core streams well over 50,000 chunks a
second: each chunk is one pre-built byte string and one ``transport.write``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import TYPE_CHECKING, Any, Protocol

from emulator.arrival import arrival

if TYPE_CHECKING:
    from emulator.engine import Sequence


class Application(Protocol):
    """What a connection hands its requests to (server.App)."""

    @property
    def keep_alive_s(self) -> float:
        """Close a keep-alive connection idle this long (0: after every response)."""

    def handle(self, conn: Connection, method: str, path: str, headers: dict[str, str], body: bytes) -> None: ...

    def closed_idle(self) -> None:
        """A keep-alive connection was closed for idling."""


REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Connection(asyncio.Protocol):
    """One client connection: parses requests, one at a time, and writes responses."""

    transport: asyncio.Transport

    def __init__(self, app: Application) -> None:
        self.app = app
        self.buf = b""
        self.busy = False
        self.closed = False
        self.active: Sequence | None = None
        self.keep_alive = True
        self._sock: object = None
        # when the bytes of the last read reached the socket (see arrival.py)
        self.arrived_mono = 0.0
        self.arrived_wall = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        # asyncio wraps it; the stamp is on the socket itself
        self._sock = getattr(sock, "_sock", sock)
        self._idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._busy()
        if self.active is not None:
            self.active.cancelled = True

    def _idle(self) -> None:
        """No request in progress: close the connection if none comes within the keep-alive timeout."""
        self._busy()
        timeout = self.app.keep_alive_s
        if timeout > 0:
            self._idle_timer = asyncio.get_running_loop().call_later(timeout, self._close_idle)

    def _busy(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _close_idle(self) -> None:
        self._idle_timer = None
        if not self.busy and not self.closed and self.transport is not None:
            self.app.closed_idle()
            self.transport.close()
            self.closed = True

    def data_received(self, data: bytes) -> None:
        self._busy()
        self.arrived_mono, self.arrived_wall = arrival(self._sock)
        self.buf += data
        self._parse()

    def _parse(self) -> None:
        while not self.busy and not self.closed:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.respond_json(413, {"detail": "headers too large"}, close=True)
                return
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                self.respond_json(400, {"detail": "bad request line"}, close=True)
                return
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length") or 0)
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            self.keep_alive = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
            self.busy = True
            self.app.handle(self, method, target, headers, body)

    # -- responses ---------------------------------------------------------------
    def respond(self, status: int, body: bytes, content_type: str, close: bool = False) -> None:
        if self.closed:
            return
        keep = self.keep_alive and not close
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\ncontent-type: {content_type}\r\n"
            f"content-length: {len(body)}\r\n{'' if keep else 'connection: close' + chr(13) + chr(10)}\r\n"
        )
        self.transport.write(head.encode() + body)
        self._done(keep)

    def respond_json(self, status: int, obj: Any, close: bool = False) -> None:
        self.respond(status, json.dumps(obj).encode(), "application/json", close)

    def start_stream(self) -> None:
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n"
        )

    def send_chunk(self, payload: bytes) -> None:
        if not self.closed:
            self.transport.write(b"%x\r\n%b\r\n" % (len(payload), payload))

    def end_stream(self) -> None:
        if not self.closed:
            self.transport.write(b"0\r\n\r\n")
        self._done(self.keep_alive)

    def abort(self, reset: bool = False) -> None:
        """Drop the connection at once; with ``reset`` the peer gets a TCP RST (fault injection)."""
        if self.transport is not None:
            sock = self.transport.get_extra_info("socket")
            if reset and sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()
        self.closed = True

    def _done(self, keep: bool) -> None:
        self.active = None
        self.busy = False
        if not keep or self.app.keep_alive_s <= 0:
            self.transport.close()
            self.closed = True
            return
        if self.buf:
            self._parse()
        if not self.busy and not self.closed:
            self._idle()
