"""The pacer: armed sends fire once, in due order, from whichever greenlet polls after they fall due."""

from __future__ import annotations

import time

import gevent
import pytest

from llmclient.pacer import Pacer
from tests.unit.llmclient.scripted import FakeClock


def test_poll_fires_what_has_fallen_due_in_due_order_and_nothing_early():
    clock = FakeClock()
    pacer = Pacer(clock)
    fired: list[str] = []
    for due, name in ((3.0, "c"), (1.0, "a"), (2.0, "b"), (2.0, "b2")):
        pacer.arm(due, lambda name=name: fired.append(name))
    clock.now = 0.999
    pacer.poll()
    assert fired == [] and pacer.next_due == 1.0
    clock.now = 2.0
    pacer.poll()
    assert fired == ["a", "b", "b2"] and pacer.next_due == 3.0 and len(pacer) == 1
    clock.now = 10.0
    pacer.poll()
    pacer.poll()
    assert fired == ["a", "b", "b2", "c"] and pacer.next_due == float("inf") and len(pacer) == 0


def test_a_wait_returns_once_its_shot_fired_there_or_elsewhere():
    pacer = Pacer()
    fired: list[float] = []
    due = time.time() + 0.02
    shot = pacer.arm(due, lambda: fired.append(time.time()))
    pacer.wait(shot)
    assert len(fired) == 1 and fired[0] >= due and shot.done
    early = pacer.arm(time.time() - 1.0, lambda: fired.append(0.0))
    # another greenlet's poll fired it: the wait returns at once
    pacer.poll()
    pacer.wait(early)
    assert len(fired) == 2


def test_an_interrupted_wait_disarms_its_shot_and_a_failing_fire_reaches_its_waiter():
    pacer = Pacer()
    fired: list[int] = []
    shot = pacer.arm(time.time() + 0.05, lambda: fired.append(1))
    waiter = gevent.spawn(pacer.wait, shot)
    gevent.sleep(0.01)
    waiter.kill()
    gevent.sleep(0.06)
    pacer.poll()
    assert fired == [] and shot.done

    def broken() -> None:
        raise RuntimeError("bug in a fire")

    bad = pacer.arm(time.time(), broken)
    # the poller goes on
    pacer.poll()
    with pytest.raises(RuntimeError, match="bug in a fire"):
        pacer.wait(bad)
