"""Master/worker coordination: an exact global ``-n`` and rows that reach the master.

Workers ask the master for request grants (custom messages); the master keeps a
``GrantLedger``, watches for departed workers and gives their unfinished grants
to the others, and ends the run when ``-n`` rows have arrived. Users whose worker
holds no grant wait rather than stop, so reclaimed grants can still be used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import gevent
from gevent.event import Event
from locust.runners import STATE_MISSING, MasterRunner

from users.budget import GrantLedger

if TYPE_CHECKING:
    from locust.env import Environment

logger = logging.getLogger(__name__)

GRANT_REQUEST = "llm_grant_request"
GRANT = "llm_grant"
REASK_AFTER_S = 5.0  # a worker asks again if no grant arrived (lost message, master restarted the test)


class WorkerBudget:
    """The worker's share of a global ``-n``: ``take`` blocks until the master grants a request."""

    def __init__(self, send: Callable[[str, dict], None]) -> None:
        self._send = send
        self.local = 0  # granted, not yet used
        self.issued = 0
        self._waiting = 0
        self._asked = False
        self._parked = False  # the master had nothing left; wait until it offers more
        self._event = Event()

    def take(self) -> bool:
        while self.local <= 0:
            self._waiting += 1
            try:
                if not self._asked and not self._parked:
                    self._asked = True
                    self._send(GRANT_REQUEST, {"want": self._waiting})
                if not self._event.wait(timeout=REASK_AFTER_S):  # no answer: ask again
                    self._asked = False
                    self._parked = False
            finally:
                self._waiting -= 1
        self.local -= 1
        self.issued += 1
        return True

    def on_grant(self, count: int) -> None:
        self._asked = False
        self._parked = count <= 0
        self.local += max(count, 0)
        # wake everyone waiting on this round; later waiters wait on a fresh event
        event, self._event = self._event, Event()
        event.set()

    def finish(self) -> None:
        """Completions are counted at the master, from the rows."""


class MasterCoordinator:
    """The master's side: grants, departed workers, and the end of the run."""

    def __init__(self, environment: Environment, total: int | None, on_complete: Callable[[], None]) -> None:
        self.environment = environment
        self.ledger = GrantLedger(total) if total else None
        self._on_complete = on_complete
        self._completed = False
        self._watch: gevent.Greenlet | None = None
        self.rows = 0  # rows received from all workers
        self.rows_by: dict[str, int] = {}  # ... and from each
        self.expected: int | None = None  # set when the number of requests is known only later (a schedule's end)

    def start(self) -> None:
        if self.ledger is not None and self._watch is None:
            self._watch = gevent.spawn(self._watch_workers)

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.kill(block=False)
            self._watch = None

    def on_grant_request(self, worker: str, want: int) -> None:
        if self.ledger is None:
            self._send_grant(worker, max(want, 1))  # no -n: anything goes
            return
        give = self.ledger.request(worker, want)
        self._send_grant(worker, give)

    def on_rows(self, worker: str, count: int) -> None:
        if count <= 0:
            return
        self.rows += count
        self.rows_by[worker] = self.rows_by.get(worker, 0) + count
        if self.ledger is not None:
            self.ledger.finished_by(worker, count)
            if self.ledger.complete:
                self._complete(self.ledger.total)
        if self.expected is not None and self.rows >= self.expected:
            self._complete(self.expected)

    def expect(self, total: int) -> None:
        """The run ends once this many rows have arrived (an open loop: its schedule's count, less
        what departed workers lost)."""
        self.expected = total
        if self.rows >= total:
            self._complete(total)

    def _complete(self, total: int) -> None:
        if not self._completed:
            self._completed = True
            logger.info("All %s requests finished", total)
            self._on_complete()

    @property
    def runner(self) -> MasterRunner:
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner), "the coordinator runs at the master"
        return runner

    def _send_grant(self, worker: str, count: int) -> None:
        self.runner.send_message(GRANT, {"count": count}, client_id=worker)

    def live_workers(self) -> set[str]:
        clients = self.runner.clients
        return {c.id for c in clients.values() if c.state != STATE_MISSING}

    def _watch_workers(self) -> None:
        while True:
            gevent.sleep(1.0)
            ledger = self.ledger
            if ledger is None:
                return
            live = self.live_workers()
            for worker in list(ledger.granted):
                if worker not in live and worker not in ledger.departed:
                    unfinished = ledger.granted[worker] - ledger.done.get(worker, 0)
                    logger.warning(
                        "worker %s left with %d unfinished requests; giving them to the others", worker, unfinished
                    )
                    ledger.depart(worker)
            for worker, count in ledger.regrant().items():
                self._send_grant(worker, count)
