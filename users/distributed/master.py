"""The master's side of a distributed run: everything it says to and hears from its workers.

- ``MasterCoordinator``: an exact global ``-n``. Workers ask for request grants; the master keeps a
  ``GrantLedger``, gives a departed worker's unfinished grants to the others, and ends the run
  when ``-n`` rows have arrived. Users whose worker holds no grant wait rather than stop.
- ``MasterDispatch``: an open loop's one schedule, its arrivals handed to the workers.
- ``MasterPort``: a sweep's levels through the workers.
- ``MasterSide``: the messages and reports it receives, wired to the above, to the request log
  and to the run's observers.
"""

from __future__ import annotations

import logging
import math
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gevent
from locust.runners import STATE_MISSING, MasterRunner

from llmclient.errors import ConfigError
from llmclient.schema import ends_session
from scheduler.levels import Level
from users.distributed import protocol
from users.load.open_loop import Due, local_arrivals
from users.load.sweep import LEVEL_START_LEAD_S, level_arrivals
from users.settings.budget import GrantLedger

if TYPE_CHECKING:
    from locust.env import Environment

    from users.observe.cpu_watch import CpuWatch
    from users.observe.observers import Observers
    from users.observe.request_log import RequestLog
    from users.services.run import LLMRun

logger = logging.getLogger(__name__)


class MasterCoordinator:
    """The master's side: grants, departed workers, and the end of the run."""

    def __init__(
        self, environment: Environment, total: int | None, on_complete: Callable[[], None], sessions: bool = False
    ) -> None:
        """``sessions``: the run counts sessions (a row ending one counts), not requests."""
        self.environment = environment
        self.sessions = sessions
        self.ledger = GrantLedger(total) if total else None
        self._on_complete = on_complete
        self._completed = False
        self._watch: gevent.Greenlet | None = None
        # rows received from all workers
        self.rows = 0
        # ... and from each
        self.rows_by: dict[str, int] = {}
        # set when the number of requests is known only later (a schedule's end)
        self.expected: int | None = None

    def start(self) -> None:
        if self.ledger is not None and self._watch is None:
            self._watch = gevent.spawn(self._watch_workers)

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.kill(block=False)
            self._watch = None

    def on_grant_request(self, worker: str, want: int) -> None:
        if self.ledger is None:
            # no -n: anything goes
            self._send_grant(worker, max(want, 1))
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
            logger.info("All %s %s finished", total, "sessions" if self.sessions else "requests")
            self._on_complete()

    @property
    def runner(self) -> MasterRunner:
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner), "the coordinator runs at the master"
        return runner

    def _send_grant(self, worker: str, count: int) -> None:
        self.runner.send_message(protocol.GRANT, protocol.grant(count), client_id=worker)

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


class MasterDispatch:
    """The master's side of a distributed open loop: draws the one schedule and hands out its arrivals.

    Starts once every worker said it is ready (its prompts are built), then sends each worker
    the arrivals due within the next ``LOOKAHEAD_S``, round-robin over the ready workers. A
    worker that leaves loses the arrivals that fell due on it without a row; those not yet
    due go to the others, and the run expects that many fewer rows.
    """

    LOOKAHEAD_S = 0.5
    TICK_S = 0.1
    READY_TIMEOUT_S = 120.0

    def __init__(self, run: LLMRun, runner: MasterRunner, coordinator: MasterCoordinator) -> None:
        self.run = run
        self.runner = runner
        self.coordinator = coordinator
        self.ready: list[str] = []
        self.workers: list[str] = []
        self.cap_share: int | None = None
        # per worker: the arrivals handed to it and not yet due (in due order), and how many fell due
        self.assigned: dict[str, deque[Due]] = {}
        self.fallen_due: dict[str, int] = {}
        # rows the run waits for (None: until the schedule ends)
        self.expected = run.context.settings.total_requests
        self.lost = 0
        # what the arrivals being handed out carry: a sweep's level, its prompt set, repetition and think time
        self.tag = protocol.level_tag()
        self.due_times: list[float] = []
        self._batches: dict[str, list[Due]] = {}
        self._next = 0
        self._loop: gevent.Greenlet[..., None] | None = None

    def on_ready(self, worker: str) -> None:
        if worker not in self.ready:
            self.ready.append(worker)

    def start(self) -> None:
        if self.expected is not None:
            self.coordinator.expect(self.expected)
        self._loop = gevent.spawn(self._dispatch)

    def _dispatch(self) -> None:
        if not self.wait_ready():
            return
        sent = self.send_arrivals(local_arrivals(self.run))
        self.end()
        # the schedule ended first (stages, a trace)
        if self.expected is None or sent < self.expected:
            self.expected = sent
            self.coordinator.expect(sent - self.lost)
        # the last arrivals are in flight: a worker may still leave
        while self.workers:
            gevent.sleep(1.0)
            self._check_departures(self._batches)
            self._flush(self._batches)

    def wait_ready(self) -> bool:
        """Wait for every worker's READY (bounded); False when none came."""
        if self.workers:
            return True
        deadline = time.monotonic() + self.READY_TIMEOUT_S
        while len(self.ready) < max(self.runner.worker_count, 1) and time.monotonic() < deadline:
            gevent.sleep(0.05)
        self.workers = sorted(self.ready)
        if not self.workers:
            logger.error("no worker is ready for the open loop's arrivals")
            return False
        cap = self.run.context.settings.load.max_concurrency
        self.cap_share = math.ceil(cap / len(self.workers)) if cap else None
        self.assigned = {w: deque() for w in self.workers}
        self._batches = {w: [] for w in self.workers}
        return True

    def send_arrivals(self, arrivals: Iterable[Due], tag: dict[str, Any] | None = None) -> int:
        """Hand out these arrivals as they come within reach, each batch with the level's ``tag``
        (``protocol.level_tag``); how many were handed out."""
        batches = self._batches
        self.tag = tag or protocol.level_tag()
        # this call's, for counting what fell due
        self.due_times = []
        for arrival in arrivals:
            while arrival.time > time.time() + self.LOOKAHEAD_S:
                self._flush(batches)
                gevent.sleep(self.TICK_S)
                self._check_departures(batches)
            if not self.workers:
                logger.error("every worker left: the open loop's schedule ends here")
                break
            self._assign(arrival, batches)
            self.due_times.append(arrival.time)
        self._flush(batches)
        return len(self.due_times)

    def fallen_due_now(self) -> int:
        """Of the last ``send_arrivals``' arrivals, how many are due by now."""
        return bisect_right(self.due_times, time.time())

    def end(self) -> None:
        """The schedule is over: each worker's open loop ends once its arrivals are sent."""
        for worker in self.workers:
            self.runner.send_message(protocol.ARRIVALS_END, None, client_id=worker)

    def _assign(self, arrival: Due, batches: dict[str, list[Due]]) -> None:
        worker = self.workers[self._next % len(self.workers)]
        self._next += 1
        batches.setdefault(worker, []).append(arrival)
        self.assigned.setdefault(worker, deque()).append(arrival)

    def _flush(self, batches: dict[str, list[Due]]) -> None:
        for worker, arrivals in batches.items():
            if arrivals:
                data = protocol.arrivals(arrivals, self.cap_share, self.tag)
                self.runner.send_message(protocol.ARRIVALS, data, client_id=worker)
                batches[worker] = []

    def _check_departures(self, batches: dict[str, list[Due]]) -> None:
        # what falls due this soon may already be on its way
        now = time.time() + 0.05
        # count what fell due: memory stays bounded
        for worker, pending in self.assigned.items():
            while pending and pending[0].time <= now:
                pending.popleft()
                self.fallen_due[worker] = self.fallen_due.get(worker, 0) + 1
        live = {c.id for c in self.runner.clients.values() if c.state != STATE_MISSING}
        for worker in [w for w in self.workers if w not in live]:
            self.workers.remove(worker)
            # batches not yet sent are among them
            later = list(self.assigned.pop(worker, deque()))
            batches.pop(worker, None)
            due = self.fallen_due.pop(worker, 0)
            lost = max(0, due - self.coordinator.rows_by.get(worker, 0))
            self.lost += lost
            for arrival in later:
                if self.workers:
                    self._assign(arrival, batches)
            logger.warning(
                "worker %s left: %d of its arrivals are lost (due, without a row), %d not yet due go to the others",
                worker,
                lost,
                len(later),
            )
            if self.expected is not None:
                self.coordinator.expect(self.expected - self.lost)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.kill(block=False)
            self._loop = None


def shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` whole shares that differ by at most one."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class MasterPort:
    """A distributed run's levels: the master hands a rate level's arrivals to the workers
    (``MasterDispatch``) and splits a concurrency level's in-flight count among them."""

    def __init__(self, dispatch: MasterDispatch, runner: MasterRunner, burstiness: float, seed: int) -> None:
        self.dispatch = dispatch
        self.runner = runner
        self.burstiness = burstiness
        self.seed = seed
        self.label = ""
        # the level running is an open loop
        self.open = True
        self.sender: gevent.Greenlet[..., int] | None = None
        self.waiting: set[str] = set()
        self.sent: dict[str, int] = {}

    def start_level(self, level: Level, label: str, until: float, limit: int | None) -> None:
        if not self.dispatch.wait_ready():
            raise ConfigError("no worker is ready for the sweep's levels")
        self.label, self.open = label, level.open_loop
        workers = self.dispatch.workers
        start = time.time() + LEVEL_START_LEAD_S
        if level.open_loop:
            arrivals = level_arrivals(level, start, until, limit, self.burstiness, self.seed)
            tag = protocol.level_tag(label, level.prompt_set, level.repeat, level.think_time)
            self.sender = gevent.spawn(self.dispatch.send_arrivals, arrivals, tag)
            return
        self.waiting, self.sent = set(workers), {}
        limits = shares(limit, len(workers)) if limit else [None] * len(workers)
        for worker, concurrency, most in zip(workers, shares(level.in_flight, len(workers)), limits, strict=True):
            tag = protocol.level_tag(label, level.prompt_set, level.repeat, level.think_time)
            data = protocol.closed_level(tag, concurrency, until, most)
            self.runner.send_message(protocol.CLOSED_LEVEL, data, client_id=worker)

    def on_level_done(self, worker: str, data: dict[str, Any]) -> None:
        if data.get("level") == self.label:
            self.waiting.discard(worker)
            self.sent[worker] = int(data.get("sent", 0))

    def sending(self) -> bool:
        if self.open:
            return self.sender is not None and not self.sender.dead
        # a lost worker sends no more
        live = {c.id for c in self.runner.clients.values() if c.state != STATE_MISSING}
        return bool(self.waiting & live)

    def expected_rows(self) -> int | None:
        if self.sending():
            return None
        if self.open:
            return len(self.dispatch.due_times)
        return sum(self.sent.values())

    def in_flight(self, rows: int) -> int:
        return max(0, self.dispatch.fallen_due_now() - rows) if self.open else 0

    def cancel(self) -> None:
        if self.sender is not None:
            self.sender.kill(block=True)
        for worker in self.dispatch.workers:
            self.runner.send_message(protocol.CANCEL_LEVEL, protocol.cancel_level(self.label), client_id=worker)

    def end(self) -> None:
        self.dispatch.end()


@dataclass
class MasterSide:
    """The master's receiving end: rows, grant requests, readiness, finished levels and the workers' reports."""

    runner: MasterRunner
    request_log: RequestLog
    observers: Observers
    cpu: CpuWatch
    # a worker says the run cannot go on: end it, said once
    on_fatal: Callable[[str], None]
    # this test's: the global -n, the arrivals sent to the workers, a sweep's levels through them
    coordinator: MasterCoordinator | None = None
    dispatch: MasterDispatch | None = None
    port: MasterPort | None = None
    # each worker's, as it last reported
    in_flight: dict[str, int] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)
    fatal: str = ""

    def wire(self) -> None:
        """Listen to the workers' messages (their reports come through ``on_worker_report``, wired by the runtime)."""
        handlers: dict[str, Callable[[str, Any], None]] = {
            protocol.GRANT_REQUEST: self.on_grant_request,
            protocol.ROWS: lambda worker, data: self.on_rows(worker, data.get("rows")),
            protocol.READY: self.on_ready,
            protocol.LEVEL_DONE: self.on_level_done,
            protocol.FATAL: self.on_worker_fatal,
        }
        for name, handler in handlers.items():
            self.runner.register_message(name, protocol.listener(handler))

    def begin_test(
        self, coordinator: MasterCoordinator, dispatch: MasterDispatch | None, port: MasterPort | None
    ) -> None:
        """A test starts with its own ledger (started here), arrivals and levels; the last test's are dropped."""
        self.end_test()
        self.in_flight.clear()
        self.queued.clear()
        self.fatal = ""
        self.coordinator, self.dispatch, self.port = coordinator, dispatch, port
        coordinator.start()

    def end_test(self) -> None:
        if self.coordinator is not None:
            self.coordinator.stop()
        if self.dispatch is not None:
            self.dispatch.stop()
            self.dispatch = None

    def on_worker_fatal(self, worker: str, data: dict[str, Any]) -> None:
        if not self.fatal:
            self.fatal = str(data.get("message") or f"worker {worker} cannot go on")
            self.on_fatal(self.fatal)

    def on_grant_request(self, worker: str, data: dict[str, Any]) -> None:
        if self.coordinator is not None:
            self.coordinator.on_grant_request(worker, int(data.get("want", 1)))

    def on_rows(self, worker: str, rows: list[list[str]] | None) -> None:
        """Rows a worker shipped: into the CSV, to the run's observers, and counted against -n."""
        if rows:
            self.request_log.write_rows(rows)
            self.observers.rows(rows)
            coordinator = self.coordinator
            if coordinator is not None:
                coordinator.on_rows(worker, sum(map(ends_session, rows)) if coordinator.sessions else len(rows))

    def on_ready(self, worker: str, _data: object) -> None:
        if self.dispatch is not None:
            self.dispatch.on_ready(worker)

    def on_level_done(self, worker: str, data: dict[str, Any]) -> None:
        if self.port is not None:
            self.port.on_level_done(worker, data)

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_kw: object) -> None:
        self.on_rows(client_id, data.get(protocol.REPORT_ROWS))
        if protocol.REPORT_IN_FLIGHT in data:
            self.in_flight[client_id] = int(data[protocol.REPORT_IN_FLIGHT])
        if protocol.REPORT_QUEUED in data:
            self.queued[client_id] = int(data[protocol.REPORT_QUEUED])
        if protocol.REPORT_CPU in data:
            self.cpu.on_worker_report(client_id, data[protocol.REPORT_CPU])
