"""When a request reached the server: the kernel's receive timestamp, not the event loop's.

The emulator's ground truth (its TTFT and e2e) starts when a request's bytes reach
its socket. Stamped when Python gets to them instead, a burst of requests (every
stream of a batch ends in the same decode step and sends its next request at once)
would date the last of them by how long the loop took to parse the others.

On Linux the kernel stamps received data (``SO_TIMESTAMPNS``). The listening socket
here hands out connections that read with ``recvmsg`` and keep the stamp of their
last read; asyncio's transports read through ``sock.recv``. Elsewhere, or if a
transport reads some other way, ``arrived`` stays None and the loop's clock is used.
This module shares nothing with the client's code on purpose (each checks the other).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import time

_SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None)
# struct timespec: seconds, nanoseconds
_TIMESPEC = struct.Struct("@ll")
_CONTROL_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0


class StampedSocket(socket.socket):
    """A connection whose ``recv`` remembers when the newest bytes it returned arrived."""

    # unix time, from the kernel
    arrived: float | None = None

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data, control, _flags, _addr = self.recvmsg(bufsize, _CONTROL_SIZE, flags)
        stamp = None
        for level, kind, payload in control:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
                seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
                stamp = seconds + nanoseconds * 1e-9
        self.arrived = stamp
        return data


class StampingListener(socket.socket):
    """A listening socket whose accepted connections are StampedSockets (when the OS can stamp)."""

    def accept(self) -> tuple[socket.socket, object]:
        fd, addr = self._accept()  # type: ignore[attr-defined]
        conn = StampedSocket(self.family, self.type, self.proto, fileno=fd)
        # every token goes out at once
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn.setsockopt(socket.SOL_SOCKET, int(_SO_TIMESTAMPNS or 0), 1)
        except OSError:
            # the class default; recvmsg still works without stamps
            conn.arrived = None
        if socket.getdefaulttimeout() is None and self.gettimeout():
            conn.setblocking(True)
        return conn, addr


def listener(host: str, port: int, backlog: int) -> socket.socket:
    """A bound, listening TCP socket; stamping where the platform supports it."""
    cls = StampingListener if _SO_TIMESTAMPNS is not None and _CONTROL_SIZE else socket.socket
    sock = cls(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if cls is StampingListener:
            # the kernel turns stamping on (deferred) when a first socket asks: ask from the start,
            # so the first requests are stamped too
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, int(_SO_TIMESTAMPNS or 0), 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


# the two perf_counter reads around the wall-clock read are at most this far apart
BRACKET_S = 20e-6


def arrival(sock: object) -> tuple[float, float]:
    """(perf_counter time, unix time) at which the last read of ``sock`` arrived; now if unknown.

    The wall clock is read between two perf_counter reads at most BRACKET_S apart (a pair that
    was preempted is read again), so a kernel stamp converts with an error of at most BRACKET_S / 2.
    """
    before = time.perf_counter()
    now_wall = time.time()
    after = time.perf_counter()
    tries = 1
    while after - before > BRACKET_S and tries < 100:
        before = time.perf_counter()
        now_wall = time.time()
        after = time.perf_counter()
        tries += 1
    now_mono = (before + after) / 2
    stamp = getattr(sock, "arrived", None)
    if stamp is None:
        return after, now_wall
    waited = now_wall - stamp
    # a clock step, not a late read
    if not 0.0 <= waited < 60.0:
        return after, now_wall
    return now_mono - waited, stamp
