"""Finished requests recorded when the process has nothing more urgent to do.

vLLM ends the streams of a batch in the same decode step. Recorded at once, each
finished request costs tens of µs (three Locust events, a CSV row) before its user
can send its next request, and the reads of the streams already restarted wait
behind all of it. A ``RecordBacklog`` keeps them and records them one at a time
when the event loop is idle: nothing to read, nothing to send. No record waits
longer than ``max_wait_s`` (a client busy without a pause still records), and
``drain`` records whatever is left when the test stops. ``between`` runs after each
record (the open loop's due sends go out there).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import gevent

T = TypeVar("T")


class RecordBacklog(Generic[T]):
    def __init__(
        self,
        record: Callable[[T], None],
        max_wait_s: float = 0.25,
        max_size: int = 1024,
        between: Callable[[], None] | None = None,
    ) -> None:
        self._record = record
        self._between = between
        self.max_wait_s = max_wait_s
        self.max_size = max_size
        self._items: deque[tuple[T, float]] = deque()
        self._worker: gevent.Greenlet | None = None

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> None:
        self._items.append((item, time.perf_counter()))
        if self._worker is None or self._worker.dead:
            self._worker = gevent.spawn(self._run)

    def drain(self, **_kw: object) -> None:
        """Record everything waiting, now."""
        items = self._items
        while items:
            self._record(items.popleft()[0])
            if self._between is not None:
                self._between()

    def _run(self) -> None:
        items = self._items
        while items:
            wait = self.max_wait_s - (time.perf_counter() - items[0][1])
            if wait > 0 and len(items) < self.max_size:
                with gevent.Timeout(wait, False):
                    gevent.idle()
                # drained meanwhile
                if not items:
                    return
            self._record(items.popleft()[0])
            if self._between is not None:
                self._between()
