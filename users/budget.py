"""The run's request budget: ``-n`` as a count of requests issued and finished.

No Locust import. ``take`` hands out one request at a time until the budget is
spent; ``finish`` counts completions and calls ``on_complete`` once, when the
last granted request has finished and no more will be granted.
"""

from __future__ import annotations

from collections.abc import Callable


class RequestBudget:
    def __init__(self, total: int | None, on_complete: Callable[[], None] | None = None) -> None:
        self.total = total  # None: unlimited
        self.issued = 0
        self.finished = 0
        self._on_complete = on_complete
        self._completed = False

    def take(self) -> bool:
        """May one more request be issued? Counts it when so."""
        if self.total is not None and self.issued >= self.total:
            return False
        self.issued += 1
        return True

    @property
    def exhausted(self) -> bool:
        return self.total is not None and self.issued >= self.total

    def finish(self) -> None:
        self.finished += 1
        if not self._completed and self.exhausted and self.finished >= self.issued:
            self._completed = True
            if self._on_complete is not None:
                self._on_complete()
