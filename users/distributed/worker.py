"""The worker's side of a distributed run: what it says to the master and what it does with the answers.

- ``WorkerBudget``: its users' share of a global ``-n``, granted by the master.
- ``ArrivalFeed``: an open loop's arrivals as the master hands them out.
- ``WorkerSide``: its rows shipped to the master, its figures in each report, and the
  master's messages (grants, arrivals, a sweep's levels) wired to its open loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event
from gevent.queue import Queue

from users.distributed import protocol
from users.load.open_loop import Due, OpenLoop

if TYPE_CHECKING:
    from locust.runners import WorkerRunner

    from users.observe.cpu_watch import CpuWatch
    from users.observe.request_log import RequestLog
    from users.services.run import LLMRun

# a worker asks again if no grant arrived (lost message, master restarted the test)
REASK_AFTER_S = 5.0
logger = logging.getLogger(__name__)

# rows go to the master at least this often, besides the periodic reports
SHIP_INTERVAL_S = 0.5

Send = Callable[[str, Any], None]


class WorkerBudget:
    """The worker's share of a global ``-n``: ``take`` blocks until the master grants a request."""

    def __init__(self, send: Callable[[str, dict], None]) -> None:
        self._send = send
        # granted, not yet used
        self.local = 0
        self.issued = 0
        self._waiting = 0
        self._asked = False
        # the master had nothing left; wait until it offers more
        self._parked = False
        self._event = Event()

    def take(self) -> bool:
        while self.local <= 0:
            self._waiting += 1
            try:
                if not self._asked and not self._parked:
                    self._asked = True
                    self._send(protocol.GRANT_REQUEST, protocol.grant_request(self._waiting))
                # no answer: ask again
                if not self._event.wait(timeout=REASK_AFTER_S):
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


class ArrivalFeed:
    """A worker's arrivals as the master sends them; iterating blocks until the next one or the end."""

    def __init__(self) -> None:
        # None: the end of the schedule
        self._queue: Queue[Due | None] = Queue()

    def put_many(self, arrivals: Iterable[list[Any]]) -> None:
        for due, stage, row in arrivals:
            self._queue.put(Due(float(due), str(stage), None if row is None else int(row)))

    def end(self) -> None:
        self._queue.put(None)

    def clear(self) -> None:
        """Drop the arrivals not yet sent (a level cut off)."""
        while not self._queue.empty():
            self._queue.get_nowait()

    def __iter__(self) -> Iterator[Due]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            yield item


def aborted(runner: WorkerRunner, data: dict[str, Any]) -> None:
    """The master ends the run on an error: this worker exits non-zero when the master's quit comes."""
    logger.error("the master ended the run: %s", data.get("message") or "an error")
    runner.environment.process_exit_code = 1


class WorkerSide:
    """The worker's end of the channel: ships rows, reports its figures, and follows the master's messages."""

    def __init__(self, runner: WorkerRunner, run: LLMRun, request_log: RequestLog, cpu: CpuWatch) -> None:
        self.runner = runner
        self.run = run
        self.request_log = request_log
        self.cpu = cpu
        self.open_loop: OpenLoop | None = None
        # an open loop's arrivals, as the master sends them
        self.feed: ArrivalFeed | None = None
        self._shipper: gevent.Greenlet[..., None] | None = None

    def send(self, name: str, data: Any) -> None:
        self.runner.send_message(name, data)

    def report_fatal(self, message: str) -> None:
        """The run cannot go on here (prompts cannot be built): the master says so, once, and ends the run."""
        self.send(protocol.FATAL, protocol.fatal(message))

    def wire(self) -> None:
        """Listen to the master's messages and ship rows every SHIP_INTERVAL_S; the runtime calls ``ship`` at the
        test's stop, ``on_report_to_master`` with each report and ``stop_shipping`` at the end."""
        handlers: dict[str, Callable[[str, dict[str, Any]], None]] = {
            protocol.GRANT: self.on_grant,
            protocol.ARRIVALS: self.on_arrivals,
            protocol.ARRIVALS_END: self.on_arrivals_end,
            protocol.CLOSED_LEVEL: self.on_closed_level,
            protocol.CANCEL_LEVEL: self.on_cancel_level,
            protocol.ABORT: lambda _master, data: aborted(self.runner, data),
        }
        for name, handler in handlers.items():
            self.runner.register_message(name, protocol.listener(handler))
        self._shipper = gevent.spawn(self._ship_often)

    # -- rows and reports ----------------------------------------------------------------------
    def _ship_often(self) -> None:
        while True:
            gevent.sleep(SHIP_INTERVAL_S)
            self.ship()

    def ship(self, **_kw: object) -> None:
        """Send the pending rows to the master now."""
        rows = self.request_log.take_pending()
        if rows:
            self.send(protocol.ROWS, protocol.rows(rows))

    def stop_shipping(self, **_kw: object) -> None:
        if self._shipper is not None:
            self._shipper.kill(block=False)
            self._shipper = None

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_kw: object) -> None:
        rows = self.request_log.take_pending()
        if rows:
            data[protocol.REPORT_ROWS] = rows
        data[protocol.REPORT_IN_FLIGHT] = self.run.context.in_flight
        data[protocol.REPORT_QUEUED] = self.open_loop.queued if self.open_loop is not None else 0
        data[protocol.REPORT_CPU] = self.cpu.report()

    # -- the master's messages -----------------------------------------------------------------
    def start_open_loop(self, host: str) -> OpenLoop:
        """An open loop (or a sweep) fed by the master's arrivals; says READY once its prompts are built."""
        self.feed = ArrivalFeed()
        self.open_loop = OpenLoop(self.run, host, None)
        self.open_loop.start(self.feed)
        self.send(protocol.READY, None)
        return self.open_loop

    def on_grant(self, _master: str, data: dict[str, Any]) -> None:
        budget = self.run.context.budget
        if isinstance(budget, WorkerBudget):
            budget.on_grant(int(data.get("count", 0)))

    def on_arrivals(self, _master: str, data: dict[str, Any]) -> None:
        if self.open_loop is not None and self.feed is not None and data:
            self.open_loop.set_cap(data.get("cap"))
            self.open_loop.begin_level(str(data.get("level") or ""), data.get("repeat"), data.get("think"))
            # a prompt level: its own prompts
            if data.get("prompts"):
                self.run.prompts.use_prompt_set(str(data["prompts"]))
            self.feed.put_many(data["arrivals"])

    def on_arrivals_end(self, _master: str, _data: dict[str, Any]) -> None:
        if self.feed is not None:
            self.feed.end()

    def on_closed_level(self, _master: str, data: dict[str, Any]) -> None:
        """A sweep's closed-loop level: this worker's share of the requests in flight, then LEVEL_DONE."""
        open_loop = self.open_loop
        if open_loop is None or not data:
            return
        sent = [0]

        def count() -> None:
            sent[0] += 1

        def run_level() -> None:
            open_loop.join_closed()
            self.send(protocol.LEVEL_DONE, protocol.level_done(data["level"], sent[0]))

        open_loop.begin_level(str(data["level"]), data.get("repeat"), data.get("think"))
        # a prompt level: its own prompts
        if data.get("prompts"):
            self.run.prompts.use_prompt_set(str(data["prompts"]))
        open_loop.start_closed(int(data["concurrency"]), float(data["until"]), data.get("limit"), on_send=count)
        gevent.spawn(run_level)

    def on_cancel_level(self, _master: str, _data: dict[str, Any]) -> None:
        """The master cut the level off: drop its arrivals and requests, and read the feed again."""
        if self.open_loop is not None and self.feed is not None:
            self.open_loop.cancel()
            self.feed.clear()
            self.open_loop.start(self.feed)

    def stop(self) -> None:
        self.open_loop = None
