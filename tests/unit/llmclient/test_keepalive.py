"""Kept connections against a real loopback server that closes them as real servers do.

A connection the server closed while idle, or one idle past the client's bound, is not reused; a
request that went out on a kept connection the server closed before any response byte is sent once
more on a new connection, timed from that send; a request that got a response byte, or went out on
a fresh connection, is never sent twice.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import gevent
import pytest

from llmclient.http import Connection, Target, TransportError, request
from llmclient.reactor import StreamReactor
from llmclient.stream import CHAT, build_payload, stream_request
from tests.unit.llmclient.scripted import END, HEAD, chat_chunk, frame, usage_chunk

PLAIN = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"
STREAM = HEAD + frame(chat_chunk("Hi")) + frame(chat_chunk("!", finish="stop"), usage_chunk(3, 2), b"[DONE]") + END

# (connection number, request number on it) -> what the server does
Policy = Callable[[int, int], str]


def answer(_conn: int, _req: int) -> str:
    return "answer"


class KeepAliveServer:
    """HTTP/1.1 on a loopback port: answers each request with ``response`` unless ``policy`` says "drop"
    (read it, close without a byte) or "partial" (a few bytes of the head, then close); closes a
    connection idle ``idle_close`` seconds, or (``close_after``) after every response, unannounced."""

    def __init__(
        self, response: bytes, policy: Policy = answer, idle_close: float | None = None, close_after: bool = False
    ) -> None:
        self.response = response
        self.policy = policy
        self.idle_close = idle_close
        self.close_after = close_after
        self.connections = 0
        # (connection, request on it, unix time read)
        self.requests: list[tuple[int, int, float]] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.target = Target.parse(f"http://127.0.0.1:{self.sock.getsockname()[1]}")
        self._loop = gevent.spawn(self._accept)

    def _accept(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            gevent.spawn(self._serve, conn, self.connections)
            self.connections += 1

    def _serve(self, conn: socket.socket, index: int) -> None:
        with conn:
            buf, n = b"", 0
            while True:
                try:
                    with gevent.Timeout(self.idle_close):
                        while b"\r\n\r\n" not in buf:
                            data = conn.recv(65536)
                            if not data:
                                return
                            buf += data
                except gevent.Timeout:
                    # idle too long: closed, as uvicorn does
                    return
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                self.requests.append((index, n, time.time()))
                action = self.policy(index, n)
                n += 1
                if action == "drop":
                    return
                if action == "partial":
                    conn.sendall(b"HTTP/1.1 200")
                    return
                conn.sendall(self.response)
                if self.close_after:
                    return

    def close(self) -> None:
        self._loop.kill()
        self.sock.close()


@pytest.fixture
def serve():
    servers: list[KeepAliveServer] = []

    def start(*args, **kwargs) -> KeepAliveServer:
        servers.append(KeepAliveServer(*args, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def get(conn: Connection) -> bytes:
    head, body = request(conn, "GET", "/v1/models")
    assert head.status == 200
    return body


def stream(conn: Connection, reactor: StreamReactor | None = None):
    return stream_request(conn, CHAT, build_payload(CHAT, "m", "hi", 4), {}, reactor=reactor)


def test_a_connection_the_server_closed_while_idle_is_not_reused(serve):
    server = serve(PLAIN, idle_close=0.1)
    conn = Connection(server.target)
    assert get(conn) == b"ok"
    # the server has closed it
    gevent.sleep(0.4)
    assert get(conn) == b"ok"
    # seen closed before the send: nothing resent
    assert server.connections == 2 and len(server.requests) == 2


def test_a_connection_idle_past_the_bound_is_not_reused_and_one_within_it_is(serve):
    # never closes
    server = serve(PLAIN)
    conn = Connection(server.target, max_idle=0.2)
    get(conn)
    get(conn)
    assert server.connections == 1
    gevent.sleep(0.3)
    get(conn)
    assert server.connections == 2 and len(server.requests) == 3


def test_a_server_that_closes_after_every_response_costs_one_connection_per_call(serve):
    # without saying so (no "connection: close")
    server = serve(PLAIN, close_after=True)
    conn = Connection(server.target)
    for _ in range(5):
        assert get(conn) == b"ok"
    assert server.connections == 5 and len(server.requests) == 5


def drop_second(conn: int, req: int) -> str:
    """The race: the server closes the kept connection just as the client's next request arrives."""
    return "drop" if (conn, req) == (0, 1) else "answer"


def test_a_control_call_the_server_closed_unanswered_on_a_kept_connection_is_sent_once_more(serve):
    server = serve(PLAIN, policy=drop_second)
    conn = Connection(server.target)
    get(conn)
    assert get(conn) == b"ok"
    assert [(c, r) for c, r, _ in server.requests] == [(0, 0), (0, 1), (1, 0)]


@pytest.mark.parametrize("read_by", ["greenlet", "reactor"])
def test_a_stream_the_server_closed_unanswered_on_a_kept_connection_is_sent_once_more_and_timed_anew(serve, read_by):
    server = serve(STREAM, policy=drop_second)
    reactor = StreamReactor() if read_by == "reactor" else None
    conn = Connection(server.target)
    assert stream(conn, reactor).success
    rec = stream(conn, reactor)
    assert rec.success and rec.output_tokens == 2, rec.error
    assert [(c, r) for c, r, _ in server.requests] == [(0, 0), (0, 1), (1, 0)]
    # on the record: the server read it twice
    assert rec.resent and rec.resent_error == "connection closed before the response headers"
    dropped = server.requests[1][2]
    # its clock started on the connection that carried it
    assert rec.start_time > dropped


@pytest.mark.parametrize("read_by", ["greenlet", "reactor"])
def test_a_request_that_got_a_response_byte_is_never_sent_again(serve, read_by):
    server = serve(STREAM, policy=lambda c, r: "partial" if (c, r) == (0, 1) else "answer")
    reactor = StreamReactor() if read_by == "reactor" else None
    conn = Connection(server.target)
    assert stream(conn, reactor).success
    rec = stream(conn, reactor)
    assert not rec.success and rec.error == "connection closed in the middle of the response headers"
    assert len(server.requests) == 2
    control = serve(PLAIN, policy=lambda c, r: "partial" if (c, r) == (0, 1) else "answer")
    conn = Connection(control.target)
    get(conn)
    with pytest.raises(TransportError, match="in the middle of the response headers"):
        get(conn)
    assert len(control.requests) == 2


def test_a_request_closed_unanswered_on_a_fresh_connection_is_an_error_not_a_resend(serve):
    server = serve(STREAM, policy=lambda c, r: "drop")
    rec = stream(Connection(server.target))
    assert not rec.success and rec.error == "connection closed before the response headers"
    with pytest.raises(TransportError, match="connection closed before the response headers"):
        get(Connection(server.target))
    # one each, never resent
    assert len(server.requests) == 2


def test_the_staleness_check_on_a_gevent_socket_never_yields_and_sees_a_close_and_stray_bytes():
    """A kept socket is checked just before its request's send, the clocks started: switching to gevent's hub
    there would let every ready greenlet run first (gevent's select does, even with a zero timeout)."""
    from gevent import socket as gsocket

    from llmclient.http import _peer_spoke

    ours, theirs = gsocket.socketpair()
    ran = []
    # ready to run: any switch to the hub runs it
    gevent.spawn(ran.append, "another greenlet")
    # alive and silent: no yield
    assert _peer_spoke(ours) is False and ran == []
    theirs.sendall(b"x")
    # bytes nobody asked for
    assert _peer_spoke(ours) is True and ran == []
    assert ours.recv(1) == b"x"
    theirs.close()
    # closed by the other side
    assert _peer_spoke(ours) is True and ran == []
    gevent.sleep(0)
    assert ran == ["another greenlet"]
    ours.close()
