"""``--max-fail-ratio``: stop the run early once too many requests fail.

Reads Locust's own stats for the request row, so it works alike in a local run and
at the master (where the workers' stats arrive in their reports).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import gevent

if TYPE_CHECKING:
    from locust.stats import RequestStats

logger = logging.getLogger(__name__)

# judge no ratio on fewer requests than this
MIN_REQUESTS = 20


def exceeded(failures: int, requests: int, ratio: float, min_requests: int = MIN_REQUESTS) -> bool:
    return requests >= min_requests and failures / requests > ratio


class FailRatioGuard:
    def __init__(self, stats: RequestStats, name: str, ratio: float, on_exceeded: Callable[[], None]) -> None:
        self.stats = stats
        self.name = name
        self.ratio = ratio
        self._on_exceeded = on_exceeded
        self._loop: gevent.Greenlet | None = None

    def check(self) -> bool:
        entry = self.stats.get(self.name, "POST")
        if exceeded(entry.num_failures, entry.num_requests, self.ratio):
            logger.error(
                "failure ratio %.1f%% (%d of %d requests) exceeds --max-fail-ratio %g: stopping the run",
                100 * entry.num_failures / entry.num_requests,
                entry.num_failures,
                entry.num_requests,
                self.ratio,
            )
            self._on_exceeded()
            return True
        return False

    def start(self, interval: float = 0.5) -> None:
        def loop() -> None:
            while not self.check():
                gevent.sleep(interval)

        self._loop = gevent.spawn(loop)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.kill(block=False)
            self._loop = None
