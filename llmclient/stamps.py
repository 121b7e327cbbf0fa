"""Reads dated by when their bytes reached the socket, not by when Python got to them.

On Linux, plain-TCP sockets can ask the kernel to stamp received data
(``SO_TIMESTAMPNS``): ``recvmsg`` then says when the newest bytes of a read arrived,
in unix time. ``arrival`` converts that to the caller's monotonic clock; the two
clocks are read back to back and bracketed, so the conversion errs by at most
``MAX_CONVERSION_ERROR_S`` (CLOCK_MONOTONIC and CLOCK_REALTIME are slewed alike by
NTP, so their offset only moves when the clock is stepped).
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from collections.abc import Callable

RECV_SIZE = 65536

# SO_TIMESTAMPNS is 35 on Linux; Python does not export the name. The control message it
# produces has the same number and carries a struct timespec (two C longs).
SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None)
_TIMESPEC = struct.Struct("@ll")
ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
# a larger gap between arrival and read means a clock step, not a late read
MAX_LAG_S = 60.0
# the monotonic reads around the wall-clock read are at most this far apart
BRACKET_S = 20e-6
MAX_CONVERSION_ERROR_S = BRACKET_S / 2


def enable_receive_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp this socket's received data; False where it cannot."""
    if SO_TIMESTAMPNS is None or not ANCILLARY_SIZE:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


_stamping_holder: socket.socket | None = None


def keep_kernel_stamping_on() -> None:
    """Hold one stamping socket for the life of the process.

    The kernel stamps packets only while some socket asks for it, and turns stamping on
    in a deferred work item: packets that arrive in between carry no stamp (and are dated
    by the read). Held from the start, the first requests of a run are dated like the rest.
    """
    global _stamping_holder
    if _stamping_holder is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if enable_receive_timestamps(sock):
            _stamping_holder = sock
        else:
            sock.close()


def receive_timestamp(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The kernel's unix time of arrival from ``recvmsg``'s ancillary data, if present."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return float(seconds + nanoseconds * 1e-9)
    return None


def read(sock: socket.socket, stamped: bool) -> tuple[bytes, float | None]:
    """One read of up to RECV_SIZE bytes, and the kernel's unix time of their arrival (None when
    the socket is not stamped or the kernel gave no stamp). Raises what ``recv`` raises."""
    if stamped:
        data, ancillary, _flags, _addr = sock.recvmsg(RECV_SIZE, ANCILLARY_SIZE)
        return data, receive_timestamp(ancillary)
    return sock.recv(RECV_SIZE), None


def arrival(clock: Callable[[], float], arrived: float | None) -> float:
    """When data arrived, on ``clock``: now, less the time it waited unread.

    ``arrived`` is the kernel's unix time of arrival (None when unknown: now). The wall clock
    is read between two reads of ``clock`` no more than BRACKET_S apart, so the result errs by
    at most MAX_CONVERSION_ERROR_S (a pair that was preempted is read again, up to 100 times).
    """
    if arrived is None:
        return clock()
    before = clock()
    wall = time.time()
    after = clock()
    tries = 1
    # preempted between the reads: read again
    while after - before > BRACKET_S and tries < 100:
        before = clock()
        wall = time.time()
        after = clock()
        tries += 1
    waited = wall - arrived
    now = (before + after) / 2
    return now - waited if 0.0 < waited < MAX_LAG_S else after
