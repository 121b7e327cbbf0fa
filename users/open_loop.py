"""Open-loop load: each arrival is sent when it is due, in a greenlet of its own, whatever earlier
requests are doing; ``--max-concurrency`` (this process's share) makes a due request wait for a
free slot, and that wait is its ``queue_s``.

Each arrival is made ready ``LEAD_S`` before it is due (a slot, the prompt, the body, a connected
socket) and armed on the run's pacer (``llmclient/pacer.py``): at the due time, whichever greenlet
holds the event loop starts its clocks and writes it. A slot held ahead of time is held at most
``LEAD_S`` early; an arrival stopped before its due time (the run or a level ends) was never sent
and has no row (``unsent``).

A local run draws its own schedule (``scheduler.arrivals``); in a distributed run the master
draws it and hands each worker its arrivals a little ahead of time, as unix due times
(``MasterDispatch``), so the arrival process is one process whatever the number of workers.
"""

from __future__ import annotations

import logging
import math
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import gevent
from gevent.lock import BoundedSemaphore
from gevent.pool import Group
from gevent.queue import Queue
from locust.exception import StopUser
from locust.runners import STATE_MISSING

from llmclient.measure import RequestRecord
from llmclient.transports import Transport
from scheduler.arrivals import schedule
from scheduler.trace import arrivals as trace_arrivals
from users.base import LLMClient, socket_transport
from users.run import LLMRun

if TYPE_CHECKING:
    from locust.runners import MasterRunner

    from users.distributed import MasterCoordinator

logger = logging.getLogger(__name__)

LEAD_S = 0.05  # an arrival is made ready this long before it is due
START_LEAD_S = 0.05  # the first arrival is due this long after the schedule starts
ARRIVALS = "llm_arrivals"  # master -> worker: [[due unix time, stage, trace row], ...]
ARRIVALS_END = "llm_arrivals_end"  # master -> worker: the schedule has ended
READY = "llm_open_loop_ready"  # worker -> master: prompts built, ready for arrivals

Due = tuple[float, str, int]  # (unix due time, stage, the trace's row or NO_ROW)
NO_ROW = -1


def local_arrivals(run: LLMRun) -> Iterator[Due]:
    """This process's whole schedule (a local run), due from now on."""
    s = run.context.settings
    trace = run.context.trace()
    start = time.time() + START_LEAD_S
    if trace is not None:
        for arrival in trace_arrivals(trace, s.trace_speed, s.num_requests):
            yield start + arrival.offset_s, "", arrival.index
        return
    profile = s.open_loop
    assert profile is not None
    for arrival in schedule(profile, s.burstiness, s.seed, total=s.num_requests):
        yield start + arrival.offset_s, arrival.stage, NO_ROW


class ArrivalFeed:
    """A worker's arrivals as the master sends them; iterating blocks until the next one or the end."""

    _END = (math.nan, "", NO_ROW)

    def __init__(self) -> None:
        self._queue: Queue[Due] = Queue()

    def put_many(self, arrivals: Iterable[list[Any]]) -> None:
        for due, stage, row in arrivals:
            self._queue.put((float(due), str(stage), int(row)))

    def end(self) -> None:
        self._queue.put(self._END)

    def clear(self) -> None:
        """Drop the arrivals not yet sent (a level cut off)."""
        while not self._queue.empty():
            self._queue.get_nowait()

    def __iter__(self) -> Iterator[Due]:
        while True:
            item = self._queue.get()
            if math.isnan(item[0]):
                return
            yield item


class TransportPool:
    """Idle keep-alive transports, shared by the open loop's requests.

    Keeps ``spare`` of them connected ahead: a due request that had to connect first would wait
    for the connection (and the event loop's other work meanwhile) after its clock started.
    """

    def __init__(self, make: Callable[[], Transport], spare: int = 16) -> None:
        self._make = make
        self.spare = spare
        self._idle: list[Transport] = []
        self._filler: gevent.Greenlet[..., None] | None = None

    def get(self) -> Transport:
        transport = self._idle.pop() if self._idle else self._make()
        if len(self._idle) < self.spare and (self._filler is None or self._filler.dead):
            self._filler = gevent.spawn(self._fill)
        return transport

    def _fill(self) -> None:
        while len(self._idle) < self.spare:
            transport = self._make()
            transport.prepare()
            self._idle.append(transport)

    def put(self, transport: Transport) -> None:
        self._idle.append(transport)

    def close(self) -> None:
        if self._filler is not None:
            self._filler.kill(block=False)
        for transport in self._idle:
            transport.close()
        self._idle.clear()


class OpenLoop:
    """Sends this process's arrivals when due; ``queued``: how many wait for a slot now."""

    def __init__(self, run: LLMRun, host: str, cap: int | None) -> None:
        self.run = run
        self.host = host
        self.chooser = run.context.chooser(host)  # a bad host fails here, once
        self.pools = {one: TransportPool(lambda one=one: socket_transport(run.context, one))  # type: ignore[misc]
                      for one in self.chooser.hosts}  # fmt: skip
        self.cap = BoundedSemaphore(cap) if cap else None
        self.requests = Group()
        self.queued = 0
        self.unsent = 0  # arrivals made ready but stopped before their due time: no request, no row
        self.level = ""  # a sweep's current level: every request sent now carries it
        self._loop: gevent.Greenlet[..., None] | None = None  # sends the arrivals
        self._closed: gevent.Greenlet[..., None] | None = None  # a closed level's loops

    def set_cap(self, cap: int | None) -> None:
        """This process's share of --max-concurrency (a worker learns it from the master)."""
        if cap and self.cap is None:
            self.cap = BoundedSemaphore(cap)

    def start(self, arrivals: Iterable[Due], on_end: Callable[[], None] | None = None) -> None:
        self._loop = gevent.spawn(self._release, arrivals, on_end)

    @property
    def sending(self) -> bool:
        """Arrivals (or a closed level's loops) remain to be sent."""
        return any(g is not None and not g.dead for g in (self._loop, self._closed))

    def _release(self, arrivals: Iterable[Due], on_end: Callable[[], None] | None) -> None:
        for due, stage, row in arrivals:
            ahead = due - LEAD_S - time.time()
            if ahead > 0:
                gevent.sleep(ahead)
            rec = RequestRecord(scheduled_time=due, stage=stage, level=self.level)
            if row != NO_ROW:
                rec.trace_index = row
            self.requests.spawn(self._send, rec)
        self.requests.join()
        if on_end is not None:
            on_end()

    def start_closed(self, concurrency: int, until: float, limit: int | None,
                     on_send: Callable[[], None] | None = None) -> None:  # fmt: skip
        """A closed level: ``concurrency`` requests in flight, each sent when one ends, until the unix
        time ``until`` or ``limit`` requests (no due times, no queue)."""
        sent = [0]

        def loop() -> None:
            while time.time() < until and (limit is None or sent[0] < limit):
                sent[0] += 1
                if on_send is not None:
                    on_send()
                self._send(RequestRecord(level=self.level), capped=False)

        def run_all() -> None:
            for _ in range(concurrency):
                self.requests.spawn(loop)  # cancel() kills them with the requests
            self.requests.join()

        self._closed = gevent.spawn(run_all)

    def join_closed(self) -> None:
        if self._closed is not None:
            self._closed.join()

    def cancel(self) -> None:
        """Cut off what is being sent and in flight now (recorded as cancelled); ready for the next level."""
        for greenlet in (self._loop, self._closed):
            if greenlet is not None:
                greenlet.kill(block=True)
        self._loop = self._closed = None
        self.requests.kill(block=True)

    def _send(self, rec: RequestRecord, capped: bool = True) -> None:
        """Make the request ready and send it (at its due time, when it has one), then read it to its end."""
        if self.cap is not None and capped:
            self.queued += 1
            try:
                self.cap.acquire()
            finally:
                self.queued -= 1
        if capped and rec.scheduled_time is not None:  # the wait for a slot past the due time
            rec.queue = max(0.0, time.time() - rec.scheduled_time) if self.cap is not None else 0.0
        host = self.chooser.pick()
        pool = self.pools[host]
        transport = pool.get()
        self.chooser.started(host)
        try:
            prompts = self.run.prompts
            if rec.trace_index is not None:
                prompt = prompts.prompt_for(rec.trace_index)
                rec.ideal_cached_tokens = prompt.ideal_cached
            else:
                prompt = prompts.next_prompt()
            rec.unique_from = prompt.unique_from
            client = LLMClient(self.run, host, transport)
            client.request(self.run.context.endpoint, prompt.content, prompt.max_tokens, {}, False, rec)
        except StopUser:  # -n is spent
            pass
        finally:
            if rec.scheduled_time is not None and not rec.start_time:
                self.unsent += 1
            self.chooser.finished(host)
            pool.put(transport)
            if self.cap is not None and capped:
                self.cap.release()

    def stop(self) -> None:
        """End the schedule; requests in flight are cut off (and recorded as cancelled)."""
        self.cancel()
        for pool in self.pools.values():
            pool.close()


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
        self.expected = run.context.settings.num_requests  # rows the run waits for (None: until the schedule ends)
        self.lost = 0
        self.level = ""  # a sweep's level of the arrivals being handed out
        self.groups: int | None = None  # and its shared prefixes (a prefix-groups level)
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
        if self.expected is None or sent < self.expected:  # the schedule ended first (stages, a trace)
            self.expected = sent
            self.coordinator.expect(sent - self.lost)
        while self.workers:  # the last arrivals are in flight: a worker may still leave
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
        cap = self.run.context.settings.max_concurrency
        self.cap_share = math.ceil(cap / len(self.workers)) if cap else None
        self.assigned = {w: deque() for w in self.workers}
        self._batches = {w: [] for w in self.workers}
        return True

    def send_arrivals(self, arrivals: Iterable[Due], level: str = "", groups: int | None = None) -> int:
        """Hand out these arrivals as they come within reach; how many were handed out."""
        batches = self._batches
        self.level, self.groups = level, groups
        self.due_times = []  # this call's, for counting what fell due
        for arrival in arrivals:
            while arrival[0] > time.time() + self.LOOKAHEAD_S:
                self._flush(batches)
                gevent.sleep(self.TICK_S)
                self._check_departures(batches)
            if not self.workers:
                logger.error("every worker left: the open loop's schedule ends here")
                break
            self._assign(arrival, batches)
            self.due_times.append(arrival[0])
        self._flush(batches)
        return len(self.due_times)

    def fallen_due_now(self) -> int:
        """Of the last ``send_arrivals``' arrivals, how many are due by now."""
        return bisect_right(self.due_times, time.time())

    def end(self) -> None:
        """The schedule is over: each worker's open loop ends once its arrivals are sent."""
        for worker in self.workers:
            self.runner.send_message(ARRIVALS_END, None, client_id=worker)

    def _assign(self, arrival: Due, batches: dict[str, list[Due]]) -> None:
        worker = self.workers[self._next % len(self.workers)]
        self._next += 1
        batches.setdefault(worker, []).append(arrival)
        self.assigned.setdefault(worker, deque()).append(arrival)

    def _flush(self, batches: dict[str, list[Due]]) -> None:
        for worker, arrivals in batches.items():
            if arrivals:
                data = {"arrivals": [list(a) for a in arrivals], "cap": self.cap_share, "level": self.level,
                        "groups": self.groups}  # fmt: skip
                self.runner.send_message(ARRIVALS, data, client_id=worker)
                batches[worker] = []

    def _check_departures(self, batches: dict[str, list[Due]]) -> None:
        now = time.time() + 0.05  # what falls due this soon may already be on its way
        for worker, pending in self.assigned.items():  # count what fell due: memory stays bounded
            while pending and pending[0][0] <= now:
                pending.popleft()
                self.fallen_due[worker] = self.fallen_due.get(worker, 0) + 1
        live = {c.id for c in self.runner.clients.values() if c.state != STATE_MISSING}
        for worker in [w for w in self.workers if w not in live]:
            self.workers.remove(worker)
            later = list(self.assigned.pop(worker, deque()))  # batches not yet sent are among them
            batches.pop(worker, None)
            due = self.fallen_due.pop(worker, 0)
            lost = max(0, due - self.coordinator.rows_by.get(worker, 0))
            self.lost += lost
            for arrival in later:
                if self.workers:
                    self._assign(arrival, batches)
            logger.warning(
                "worker %s left: %d of its arrivals are lost (due, without a row), %d not yet due go to the others",
                worker, lost, len(later),
            )  # fmt: skip
            if self.expected is not None:
                self.coordinator.expect(self.expected - self.lost)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.kill(block=False)
            self._loop = None
