"""Connection reuse: a stale keep-alive socket is replaced once; a fresh one that fails is an error."""

from __future__ import annotations

import pytest

from users.http import Connection, Target, TransportError


class FakeSocket:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.sent = b""

    def sendall(self, data: bytes) -> None:
        if self.fail:
            raise BrokenPipeError(32, "Broken pipe")
        self.sent += data

    def close(self) -> None:
        pass


def connection_with(new_sockets: list[FakeSocket]) -> Connection:
    conn = Connection(Target.parse("http://127.0.0.1:9"))

    def connect() -> FakeSocket:
        conn._sock = new_sockets.pop(0)
        return conn._sock

    conn._connect = connect  # type: ignore[method-assign]
    return conn


def test_stale_keepalive_socket_is_replaced_once_and_the_request_sent_once():
    fresh = FakeSocket(fail=False)
    conn = connection_with([fresh])
    conn._sock = FakeSocket(fail=True)  # the server closed it while idle
    reused = conn.send(b"POST / HTTP/1.1\r\n\r\n")
    assert reused is False and fresh.sent == b"POST / HTTP/1.1\r\n\r\n"


def test_a_fresh_socket_that_fails_is_not_retried():
    conn = connection_with([FakeSocket(fail=True), FakeSocket(fail=False)])
    with pytest.raises(TransportError, match="connection failed while sending: Broken pipe"):
        conn.send(b"x")


def test_a_replacement_that_fails_too_is_an_error():
    conn = connection_with([FakeSocket(fail=True)])
    conn._sock = FakeSocket(fail=True)
    with pytest.raises(TransportError, match="connection failed while sending"):
        conn.send(b"x")
