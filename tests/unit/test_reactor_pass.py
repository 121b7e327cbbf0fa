"""The reactor's read pass yields to a due send: an open loop's arrival does not wait for a pass over
every stream (which takes milliseconds with hundreds of streams open)."""

from __future__ import annotations

import math
import time

from llmclient.reactor import PASS_CHECK, StreamReactor


class FakeEpoll:
    def __init__(self, fds: list[int]) -> None:
        self.fds = fds

    def poll(self, _timeout: float) -> list[tuple[int, int]]:
        return [(fd, 1) for fd in self.fds]


def reactor_with(ready: int) -> tuple[StreamReactor, list[int]]:
    reactor = StreamReactor()
    read: list[int] = []
    reactor._epoll = FakeEpoll(list(range(ready)))  # type: ignore[assignment]
    reactor._streams = {fd: object() for fd in range(ready)}  # type: ignore[misc]
    reactor._readable = lambda fd, stream: read.append(fd)  # type: ignore[method-assign]
    return reactor, read


def test_a_pass_reads_every_ready_stream_when_nothing_is_due():
    reactor, read = reactor_with(100)
    assert reactor.yield_at == math.inf
    assert reactor._read_ready() is True and read == list(range(100))


def test_a_pass_stops_once_a_send_is_due_and_leaves_the_rest_ready():
    reactor, read = reactor_with(100)
    reactor.yield_at = time.time() - 0.001  # a send is due
    assert reactor._read_ready() is False
    assert read == list(range(PASS_CHECK))  # the rest stay ready in epoll for the next pass
