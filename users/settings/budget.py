"""The run's request budget: ``-n`` as a count of requests issued and finished.

No Locust import. ``take`` hands out one request at a time until the budget is
spent; ``finish`` counts completions and calls ``on_complete`` once, when the
last granted request has finished and no more will be granted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from llmclient.measure import RequestRecord


class Budget(Protocol):
    """What a user asks before each request (``take``) and says after it (``finish``)."""

    def take(self) -> bool: ...

    def finish(self) -> None: ...


class Units:
    """What a request spends of the budget: one, or with ``sessions`` (``--sessions N``) its session's one (its
    first turn takes it, its last turn finishes it; a request outside a session spends its own)."""

    def __init__(self, budget: Budget, sessions: bool) -> None:
        self.budget = budget
        self.sessions = sessions

    def take(self, rec: RequestRecord) -> bool:
        if self.sessions and rec.turn > 1:
            return True
        return self.budget.take()

    def finish(self, rec: RequestRecord) -> None:
        if self.sessions and rec.turn and not rec.last_turn:
            return
        self.budget.finish()


class RequestBudget:
    def __init__(self, total: int | None, on_complete: Callable[[], None] | None = None) -> None:
        # None: unlimited
        self.total = total
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


class GrantLedger:
    """The master's side of a global ``-n``: request grants handed to workers.

    ``available`` = total − (grants held by live workers) − (requests finished by departed
    workers). A worker that leaves gives back what it was granted but did not finish, so
    the run still reaches ``total`` finished requests on the workers that remain.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.granted: dict[str, int] = {}
        self.done: dict[str, int] = {}
        self.departed: set[str] = set()
        # workers that asked while nothing was available
        self.waiting: dict[str, int] = {}

    @property
    def finished(self) -> int:
        return sum(self.done.values())

    @property
    def committed(self) -> int:
        live = sum(g for w, g in self.granted.items() if w not in self.departed)
        gone = sum(d for w, d in self.done.items() if w in self.departed)
        return live + gone

    @property
    def available(self) -> int:
        return max(0, self.total - self.committed)

    @property
    def complete(self) -> bool:
        return self.finished >= self.total

    def request(self, worker: str, want: int) -> int:
        """Grant up to ``want`` requests to ``worker``; remembers it as waiting when none are left."""
        if worker in self.departed:
            return 0
        give = min(max(want, 0), self.available)
        self.granted[worker] = self.granted.get(worker, 0) + give
        if give < want:
            self.waiting[worker] = want - give
        else:
            self.waiting.pop(worker, None)
        return give

    def finished_by(self, worker: str, count: int) -> None:
        self.done[worker] = self.done.get(worker, 0) + count

    def depart(self, worker: str) -> None:
        """A worker left: what it held but did not finish becomes available again."""
        self.departed.add(worker)
        self.waiting.pop(worker, None)

    def regrant(self) -> dict[str, int]:
        """Hand reclaimed requests to waiting workers; returns the new grants by worker."""
        out: dict[str, int] = {}
        for worker, want in list(self.waiting.items()):
            give = self.request(worker, want)
            if give:
                out[worker] = give
        return out
