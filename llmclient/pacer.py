"""Sends that fall due go out from whichever greenlet holds the event loop at that moment.

gevent cannot pre-empt a greenlet: a send that falls due waits for the greenlet running then
(a read pass over hundreds of streams, the recording of finished requests) and for every
callback queued before its own. So an open-loop request is made ready ahead of its time (prompt,
body, a connected socket) and *armed* here with a ``fire`` that does only what has to happen at
the due time: start the clocks and write the request, a few µs. The greenlets that can hold the
loop for long call ``poll`` as they go, and any armed send whose time has come is fired there
and then. The armed request's own greenlet also waits for its time (``wait``): a timer for most
of the wait, then polling between yields, for when nothing else is running.

No I/O here but the caller's ``fire``; the clock is injectable (tests script it).
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable

import gevent

# the last stretch of a wait polls between yields: libev's timers round to milliseconds
SPIN_S = 0.002


class Shot:
    """One armed send: ``fire`` is called once, at ``due`` or as soon after as some greenlet polls."""

    __slots__ = ("done", "due", "error", "fire")

    def __init__(self, due: float, fire: Callable[[], None]) -> None:
        self.due = due
        self.fire = fire
        # fired, or disarmed
        self.done = False
        # what fire raised (a bug): the waiting greenlet raises it
        self.error: Exception | None = None


class Pacer:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._armed: list[tuple[float, int, Shot]] = []
        # equal due times fire in the order armed
        self._order = itertools.count()
        # the earliest armed due time (perhaps of a disarmed shot)
        self.next_due = math.inf

    def __len__(self) -> int:
        return sum(not shot.done for _, _, shot in self._armed)

    def arm(self, due: float, fire: Callable[[], None]) -> Shot:
        shot = Shot(due, fire)
        heapq.heappush(self._armed, (due, next(self._order), shot))
        self.next_due = min(self.next_due, due)
        return shot

    def poll(self) -> None:
        """Fire every armed send whose time has come. Costs a clock read when none has."""
        if self.clock() < self.next_due:
            return
        armed = self._armed
        while armed and armed[0][0] <= self.clock():
            shot = heapq.heappop(armed)[2]
            if shot.done:
                continue
            shot.done = True
            try:
                shot.fire()
            # a bug in a fire must not stop the greenlet that polled
            except Exception as exc:
                shot.error = exc
        self.next_due = armed[0][0] if armed else math.inf

    def wait(self, shot: Shot) -> None:
        """Return once ``shot`` has been fired, here or by another greenlet's ``poll``. Interrupted
        first (the test stops), the shot is disarmed: it never fires."""
        try:
            remaining = shot.due - self.clock()
            if remaining > SPIN_S:
                gevent.sleep(remaining - SPIN_S)
            while not shot.done:
                self.poll()
                if not shot.done:
                    gevent.sleep(0)
        except BaseException:
            shot.done = True
            raise
        if shot.error is not None:
            raise shot.error
