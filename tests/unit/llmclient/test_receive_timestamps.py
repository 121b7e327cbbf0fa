"""Reads dated by the kernel's arrival time: a client busy elsewhere does not move TTFT.

A real loopback server (a greenlet) sends a token, then blocks the whole process, so
the client can only read the token late. Dated by the read, TTFT would include the
block; dated by the kernel's receive timestamp, it does not. Linux only.
"""

from __future__ import annotations

import socket
import sys
import time

import gevent
import pytest
from gevent.monkey import get_original

from emulator.arrival import arrival, listener
from llmclient.http import Connection, Target
from llmclient.reactor import StreamReactor
from llmclient.stream import CHAT, stream_request
from tests.unit.llmclient.scripted import END, HEAD, chat_chunk, frame, usage_chunk

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_TIMESTAMPNS is Linux's")

# blocks every greenlet, as a busy client would
block_process = get_original("time", "sleep")
BLOCK_S = 0.3


@pytest.fixture(autouse=True, scope="module")
def stamping_enabled():
    """The kernel turns stamping on (a deferred work item) when the first socket asks for it and
    off when the last one closes; packets in between are not stamped. Keep one socket asking."""
    keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # SO_TIMESTAMPNS
    keeper.setsockopt(socket.SOL_SOCKET, 35, 1)
    block_process(0.05)
    yield
    keeper.close()


def serve_one(first_token_delay: float, sent_at: list[float]) -> tuple[int, gevent.Greenlet]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def run() -> None:
        conn, _ = server.accept()
        # the request
        conn.recv(65536)
        conn.sendall(HEAD)
        gevent.sleep(first_token_delay)
        conn.sendall(frame(chat_chunk("a")))
        sent_at.append(time.perf_counter())
        # the token waits unread in the client's socket
        block_process(BLOCK_S)
        # the client reads it now, late, before anything else arrives
        gevent.sleep(0.1)
        conn.sendall(frame(chat_chunk("b", finish="length"), usage_chunk(5, 2), b"[DONE]") + END)
        conn.close()
        server.close()

    return server.getsockname()[1], gevent.spawn(run)


@pytest.mark.parametrize(
    ("first_token_delay", "reactor"),
    [
        # head and first token read together, in the user's greenlet
        (0.0, None),
        # the first token read on its own, in the user's greenlet
        (0.05, None),
        # the first token read by the shared reactor
        (0.05, StreamReactor()),
    ],
)
def test_a_token_read_late_is_dated_by_its_arrival(first_token_delay, reactor):
    sent_at: list[float] = []
    port, server = serve_one(first_token_delay, sent_at)
    conn = Connection(Target.parse(f"http://127.0.0.1:{port}"))
    rec = stream_request(conn, CHAT, b"{}", {}, reactor=reactor)
    server.join(timeout=5)
    assert conn.stamped
    assert rec.success, rec.error
    # about when the request went out
    started = sent_at[0] - first_token_delay
    # dated by the read, TTFT would be at least BLOCK_S; the arrival is within a few ms of the send
    assert rec.ttft_s < first_token_delay + 0.05, rec.ttft_s
    assert abs((started + rec.ttft_s) - sent_at[0]) < 0.05
    # the second token did come after the block
    assert rec.itl_s[0] >= BLOCK_S


def test_emulator_dates_a_request_by_its_arrival():
    server = listener("127.0.0.1", 0, backlog=8)
    server.setblocking(True)
    client = socket.create_connection(server.getsockname())
    conn, _ = server.accept()
    client.sendall(b"GET / HTTP/1.1\r\n\r\n")
    sent = time.perf_counter()
    block_process(BLOCK_S)
    assert conn.recv(1024) == b"GET / HTTP/1.1\r\n\r\n"
    arrived_mono, arrived_wall = arrival(conn)
    # not BLOCK_S later
    assert abs(arrived_mono - sent) < 0.05, arrived_mono - sent
    assert abs(arrived_wall - time.time() + BLOCK_S) < 0.05
    for s in (client, conn, server):
        s.close()


def test_without_kernel_timestamps_a_late_read_counts_its_lateness():
    """--no-kernel-timestamps: reads dated when the client got to them (how other clients measure)."""
    sent_at: list[float] = []
    port, server = serve_one(0.05, sent_at)
    conn = Connection(Target.parse(f"http://127.0.0.1:{port}"), kernel_timestamps=False)
    rec = stream_request(conn, CHAT, b"{}", {}, reactor=StreamReactor())
    server.join(timeout=5)
    assert not conn.stamped and rec.success, rec.error
    # the block is in the TTFT
    assert rec.ttft_s >= BLOCK_S
