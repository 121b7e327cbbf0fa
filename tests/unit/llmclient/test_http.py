"""How a read is dated when the kernel gives no usable stamp, control calls' framing, the descriptor table.
(Connection reuse: test_keepalive.py.)"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from emulator.arrival import arrival as emulator_arrival
from llmclient.http import TransportError, request
from llmclient.stamps import MAX_CONVERSION_ERROR_S, arrival, enable_receive_timestamps
from tests.procs import ROOT


def test_arrival_is_now_less_the_time_the_bytes_waited_and_now_when_the_stamp_is_unusable():
    def clock() -> float:
        return 100.0

    # no stamp (https, other systems, stamping not yet on)
    assert arrival(clock, None) == 100.0
    assert arrival(clock, time.time() - 0.5) == pytest.approx(100.0 - 0.5, abs=0.01)
    # the clock stepped: not a late read
    assert arrival(clock, time.time() - 3600) == 100.0
    # a stamp from the future
    assert arrival(clock, time.time() + 5) == 100.0


def test_a_stamp_converts_to_the_monotonic_clock_within_the_stated_bound():
    # the wall clock is read between two monotonic reads at most BRACKET_S apart: a stamp taken
    # "now" lands within MAX_CONVERSION_ERROR_S of the monotonic time around it. The stamp is taken
    # after ``lo`` so that its true time lies in [lo, hi] whenever the process is preempted (taken
    # before it, a preemption between the two reads put the truth below the bound: failed once under load)
    for _ in range(1000):
        lo = time.perf_counter()
        stamp = time.time()
        t = arrival(time.perf_counter, stamp)
        hi = time.perf_counter()
        assert lo - (hi - lo) - MAX_CONVERSION_ERROR_S - 1e-6 <= t <= hi, (lo, t, hi)


def test_a_preempted_clock_pair_is_read_again():
    # the first pair is 1 s apart: read again
    ticks = iter([0.0, 1.0, 5.0, 5.0 + 1e-6])

    def clock() -> float:
        return next(ticks)

    assert arrival(clock, time.time() - 0.25) == pytest.approx(5.0 + 0.5e-6 - 0.25, abs=0.01)


def test_a_socket_that_refuses_stamping_is_read_the_ordinary_way():
    class NoStamps:
        def setsockopt(self, *_args) -> None:
            raise OSError(92, "Protocol not available")

    assert enable_receive_timestamps(NoStamps()) is False


def test_emulator_falls_back_to_its_own_clock_without_a_usable_stamp():
    class Sock:
        arrived = None

    before = time.perf_counter()
    mono, wall = emulator_arrival(Sock())
    assert mono >= before and abs(wall - time.time()) < 0.05
    # a clock step
    Sock.arrived = time.time() - 3600
    assert emulator_arrival(Sock())[0] >= before
    Sock.arrived = time.time() - 0.5
    assert emulator_arrival(Sock())[0] == pytest.approx(time.perf_counter() - 0.5, abs=0.01)


def test_a_control_call_with_broken_framing_is_one_transport_error_and_closes():
    from tests.unit.llmclient.scripted import FakeClock, scripted_connection

    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    conn, sock = scripted_connection(FakeClock(), [(0.0, head + b"zz\r\nnot a chunk\r\n")])
    with pytest.raises(TransportError, match="bad response framing: bad chunk size"):
        request(conn, "GET", "/metrics")
    assert sock.closed and conn._sock is None


def test_a_control_call_reads_a_body_that_ends_with_the_connection():
    from tests.unit.llmclient.scripted import FakeClock, scripted_connection

    conn, sock = scripted_connection(FakeClock(), [(0.0, b"HTTP/1.1 200 OK\r\n\r\nhello "), (0.1, b"world")])
    head, body = request(conn, "GET", "/v1/models")
    # no length: closed after
    assert head.status == 200 and body == b"hello world" and sock.closed


def test_the_descriptor_table_is_grown_ahead_without_taking_any_descriptor_over():
    # in a fresh process: this one's table may have been grown by an earlier test
    probe = (
        "import os\n"
        "from llmclient.http import grow_descriptor_table\n"
        "def size():\n"
        "    return int([l for l in open('/proc/self/status') if l.startswith('FDSize:')][0].split()[1])\n"
        "before, fds = size(), sorted(os.listdir('/proc/self/fd'))\n"
        "grow_descriptor_table(most=0)  # no room up there (F_DUPFD refuses): left as it is, no error\n"
        "unchanged = size()\n"
        "grow_descriptor_table(most=4096)\n"
        "print(before, unchanged, size(), sorted(os.listdir('/proc/self/fd')) == fds)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    before, unchanged, after, same_fds = out.stdout.split()
    assert int(before) < 4096 and unchanged == before and int(after) >= 4096 and same_fds == "True", out.stderr
