"""The record backlog: records when the loop is idle, never later than max_wait_s, all of it on drain."""

from __future__ import annotations

import gevent

from users.services.backlog import RecordBacklog


def busy_loop(seconds: float) -> gevent.Greenlet:
    """A greenlet that keeps the event loop from ever being idle, as a saturated client would."""

    def spin() -> None:
        end = gevent.get_hub().loop.now() + seconds
        while gevent.get_hub().loop.now() < end:
            gevent.sleep(0)

    return gevent.spawn(spin)


def test_items_are_recorded_in_order_once_the_loop_is_idle():
    done: list[int] = []
    backlog = RecordBacklog(done.append)
    for i in range(3):
        backlog.add(i)
    # not in the caller's greenlet
    assert done == []
    gevent.sleep(0.01)
    assert done == [0, 1, 2] and len(backlog) == 0


def test_a_busy_loop_delays_recording_but_never_past_max_wait():
    done: list[int] = []
    backlog = RecordBacklog(done.append, max_wait_s=0.1)
    spinner = busy_loop(0.5)
    backlog.add(1)
    gevent.sleep(0.05)
    # the loop is busy: it waits
    assert done == []
    gevent.sleep(0.1)
    # ... but not longer than max_wait_s
    assert done == [1]
    spinner.kill()


def test_a_full_backlog_records_without_waiting():
    done: list[int] = []
    backlog = RecordBacklog(done.append, max_wait_s=10.0, max_size=2)
    spinner = busy_loop(0.5)
    for i in range(3):
        backlog.add(i)
    gevent.sleep(0.05)
    # over max_size: recorded although the loop never idled
    assert done[:2] == [0, 1]
    spinner.kill()


def test_drain_records_everything_now():
    done: list[int] = []
    backlog = RecordBacklog(done.append, max_wait_s=10.0)
    spinner = busy_loop(0.5)
    for i in range(5):
        backlog.add(i)
    backlog.drain()
    assert done == [0, 1, 2, 3, 4] and len(backlog) == 0
    gevent.sleep(0.01)
    # nothing twice
    assert done == [0, 1, 2, 3, 4]
    spinner.kill()


def test_between_runs_after_each_record_so_due_sends_go_out_between_rows():
    events: list[object] = []
    backlog = RecordBacklog(events.append, between=lambda: events.append("poll"))
    backlog.add(0)
    backlog.add(1)
    gevent.sleep(0.01)
    backlog.add(2)
    backlog.drain()
    assert events == [0, "poll", 1, "poll", 2, "poll"]
