"""The reactor's read pass fires the sends that fall due meanwhile: an open loop's arrival does not
wait for a pass over every stream (which takes milliseconds with hundreds of streams open)."""

from __future__ import annotations

from llmclient.pacer import Pacer
from llmclient.reactor import StreamReactor
from tests.unit.llmclient.scripted import FakeClock


class FakeEpoll:
    def __init__(self, fds: list[int]) -> None:
        self.fds = fds

    def poll(self, _timeout: float) -> list[tuple[int, int]]:
        return [(fd, 1) for fd in self.fds]


def reactor_with(ready: int, pacer: Pacer | None, clock: FakeClock | None = None) -> tuple[StreamReactor, list]:
    """A reactor whose epoll reports ``ready`` streams; each read takes 0.1 ms of the scripted clock."""
    reactor = StreamReactor(pacer)
    events: list = []
    reactor._epoll = FakeEpoll(list(range(ready)))  # type: ignore[assignment]
    reactor._streams = {fd: object() for fd in range(ready)}  # type: ignore[misc]

    def readable(fd: int, _stream: object) -> None:
        events.append(fd)
        if clock is not None:
            clock.now += 0.0001

    reactor._readable = readable  # type: ignore[method-assign]
    return reactor, events


def test_a_pass_reads_every_ready_stream_when_nothing_is_due():
    reactor, events = reactor_with(100, None)
    reactor._read_ready()
    assert events == list(range(100))


def test_a_send_that_falls_due_during_a_pass_goes_out_between_two_reads():
    clock = FakeClock()
    clock.now = 1000.0
    pacer = Pacer(clock)
    reactor, events = reactor_with(100, pacer, clock)
    # due after 20.5 reads of 0.1 ms
    pacer.arm(1000.00205, lambda: events.append(("sent", clock())))
    reactor._read_ready()
    sent = [e for e in events if isinstance(e, tuple)]
    # right after the read during which it fell due
    assert events.index(sent[0]) == 21
    # late by less than one read
    assert 0 <= sent[0][1] - 1000.00205 <= 0.0001
    # and the pass went on
    assert [e for e in events if not isinstance(e, tuple)] == list(range(100))
