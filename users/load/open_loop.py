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

import itertools
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

import gevent
from gevent.lock import BoundedSemaphore
from gevent.pool import Group
from locust.exception import StopUser

from llmclient.measure import RequestRecord
from llmclient.stream import Messages
from llmclient.transports import Transport
from scheduler.arrivals import schedule
from scheduler.trace import arrivals as trace_arrivals
from users.load.client import LLMClient, socket_transport
from users.services.run import LLMRun
from users.settings.mode import OpenLoop as OpenLoopMode

logger = logging.getLogger(__name__)

# an arrival is made ready this long before it is due
LEAD_S = 0.05
# the first arrival is due this long after the schedule starts
START_LEAD_S = 0.05


class Due(NamedTuple):
    """An arrival: when it is due (unix s), its stage, and its trace's row (a replay's; None otherwise)."""

    time: float
    stage: str = ""
    row: int | None = None


def local_arrivals(run: LLMRun) -> Iterator[Due]:
    """This process's whole schedule (a local run), due from now on."""
    s = run.context.settings
    trace = run.context.trace()
    start = time.time() + START_LEAD_S
    if trace is not None:
        for arrival in trace_arrivals(trace, s.load.trace_speed, s.total_requests):
            yield Due(start + arrival.offset_s, row=arrival.index)
        return
    assert isinstance(s.mode, OpenLoopMode)
    for arrival in schedule(s.mode.profile, s.load.burstiness, s.load.seed, total=s.total_requests):
        yield Due(start + arrival.offset_s, arrival.stage)


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
        # a bad host fails here, once
        self.chooser = run.context.chooser(host)
        self.pools = {
            one: TransportPool(lambda one=one: socket_transport(run.context, one))  # type: ignore[misc]
            for one in self.chooser.hosts
        }
        self.cap = BoundedSemaphore(cap) if cap else None
        self.requests = Group()
        self.queued = 0
        # arrivals made ready but stopped before their due time: no request, no row
        self.unsent = 0
        # each arrival is a session (--session-rate, a think-time sweep), not a request
        self.in_sessions = run.context.settings.in_sessions
        self._session_numbers = itertools.count(1)
        # a think-time level's gap before a user's turn (None: the sessions' own)
        self.think: float | None = None
        # a sweep's current level: every request sent now carries it
        self.level = ""
        # and its repetition (--repeat)
        self.repeat: int | None = None
        # sends the arrivals
        self._loop: gevent.Greenlet[..., None] | None = None
        # a closed level's loops
        self._closed: gevent.Greenlet[..., None] | None = None

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
            rec = RequestRecord(scheduled_time=due, stage=stage, level=self.level, repeat=self.repeat, trace_index=row)
            self.requests.spawn(self._send, rec)
        self.requests.join()
        if on_end is not None:
            on_end()

    def start_closed(
        self, concurrency: int, until: float, limit: int | None, on_send: Callable[[], None] | None = None
    ) -> None:
        """A closed level: ``concurrency`` requests in flight, each sent when one ends, until the unix
        time ``until`` or ``limit`` requests (no due times, no queue)."""
        sent = [0]

        def loop() -> None:
            while time.time() < until and (limit is None or sent[0] < limit):
                sent[0] += 1
                if on_send is not None:
                    on_send()
                self._send(RequestRecord(level=self.level, repeat=self.repeat), capped=False)

        def run_all() -> None:
            for _ in range(concurrency):
                # cancel() kills them with the requests
                self.requests.spawn(loop)
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
        """Make the request ready and send it (at its due time, when it has one), then read it to its end;
        with sessions, play a session whose first turn it is."""
        with self._slot(rec, capped):
            try:
                if self.in_sessions:
                    self._session(rec)
                    return
                prompts = self.run.prompts
                prompt = prompts.prompt_for(rec.trace_index) if rec.trace_index is not None else prompts.next_prompt()
                self._on_host(lambda client: client.send_prompt(prompt, rec))
            # -n is spent
            except StopUser:
                pass

    @contextmanager
    def _slot(self, rec: RequestRecord, capped: bool) -> Iterator[None]:
        """A slot of --max-concurrency (a request's, or with sessions a session's) held meanwhile; the wait
        past the due time is the record's queue_s."""
        use_cap = capped and self.cap is not None
        if self.cap is not None and use_cap:
            self.queued += 1
            try:
                self.cap.acquire()
            finally:
                self.queued -= 1
        if capped and rec.scheduled_time is not None:
            rec.queue_s = max(0.0, time.time() - rec.scheduled_time) if self.cap is not None else 0.0
        try:
            yield
        finally:
            if rec.scheduled_time is not None and not rec.start_time:
                self.unsent += 1
            if self.cap is not None and use_cap:
                self.cap.release()

    def _on_host(self, call: Callable[[LLMClient], RequestRecord], session: str = "") -> RequestRecord:
        """``call`` with a client to the host the chooser picks (for ``session``'s turn), over one of its pool's
        transports."""
        host = self.chooser.pick(session)
        pool = self.pools[host]
        transport = pool.get()
        self.chooser.started(host)
        try:
            return call(LLMClient(self.run, host, transport))
        finally:
            self.chooser.finished(host)
            pool.put(transport)

    def _session(self, first: RequestRecord) -> None:
        """A session arrived: its turns, each on the host the chooser picks then."""
        sessions = self.run.sessions
        settings = self.run.context.settings
        rng = random.Random(f"{settings.load.seed}-{self.run.context.stream_id}-session-{next(self._session_numbers)}")
        sid, plan = sessions.next_plan(rng)

        def send(rec: RequestRecord, messages: Messages, max_tokens: int | None) -> RequestRecord:
            endpoint = self.run.context.endpoint
            return self._on_host(
                lambda client: client.request(endpoint, messages, max_tokens=max_tokens, collect_text=True, record=rec),
                rec.session_id,
            )

        sessions.run_session(plan, sid, send, rng, first=first, think=self.think)

    def begin_level(self, label: str, repeat: int | None, think: float | None = None) -> None:
        """A sweep's level begins: every request sent from now on carries its label and repetition (a
        think-time level: its sessions wait ``think`` seconds before each user's turn)."""
        self.level, self.repeat, self.think = label, repeat, think
        self.unsent = 0

    def stop(self) -> None:
        """End the schedule; requests in flight are cut off (and recorded as cancelled)."""
        self.cancel()
        for pool in self.pools.values():
            pool.close()
