"""The base of every LLM user: ``self.client.chat(...)`` / ``self.client.completion(...)``.

A user class chooses a transport (``make_transport``); everything else is shared:
the ``-n`` budget, the model, requests in flight, cancellation and recording, so a
task written against ``self.client`` gets the same exact rows as the built-in one.

    from locust import task
    from users.base import LLMUser

    class MyUser(LLMUser):
        @task
        def ask(self):
            first = self.client.chat([{"role": "user", "content": "Name a prime."}], max_tokens=16)
            self.client.chat([{"role": "user", "content": f"Is {first.text} prime?"}], max_tokens=16)
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping

import gevent
from gevent import GreenletExit
from locust import User, constant
from locust.exception import StopUser

from llmclient.errors import ConfigError
from llmclient.http import Target
from llmclient.measure import RequestRecord
from llmclient.stream import CHAT, COMPLETIONS, Endpoint, Messages, build_body
from llmclient.transports import SocketTransport, Transport
from prompts.text import join, words
from users.context import RunContext
from users.hosts import primary
from users.run import LLMRun, get_run

logger = logging.getLogger(__name__)

FAILED_CONNECT_PAUSE_S = 0.05
OPEN_LOOP_IDLE_S = 1.0


class LLMClient:
    """One user's client: streams, measures and records each call as one request of the run.

    With several hosts in ``-H`` each request goes to the one ``--host-strategy`` picks, over a
    transport of its own (``make_transport(host)``); ``transport`` is the first host's."""

    def __init__(self, run: LLMRun, host: str, transport: Transport,
                 make_transport: Callable[[str], Transport] | None = None) -> None:  # fmt: skip
        self.run = run
        self.host = host
        self.transport = transport
        self.chooser = run.context.chooser(host)
        self._transports = {self.chooser.hosts[0]: transport}
        self._make_transport = make_transport

    def transport_for(self, host: str) -> Transport:
        transport = self._transports.get(host)
        if transport is None:
            if self._make_transport is None:
                return self.transport
            transport = self._transports[host] = self._make_transport(host)
        return transport

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()

    def chat(
        self,
        messages: str | Messages,
        max_tokens: int | None = None,
        *,
        collect_text: bool = True,
        **extra_body: object,
    ) -> RequestRecord:
        """A streaming ``/v1/chat/completions`` request (a string is one user message).

        ``max_tokens`` defaults to ``--max-tokens``; ``extra_body`` goes into the request's JSON
        as it is (``tools=...``, ``temperature=...``, ``model=...``). Returns the record:
        ``text``, ``usage``, ``finish_reason``, ``ttft_s``, ``e2e_s``, ``success``, ``error``.
        Raises StopUser when the run's ``-n`` is spent.
        """
        return self.request(CHAT, messages, max_tokens, extra_body, collect_text)

    def completion(
        self, prompt: str, max_tokens: int | None = None, *, collect_text: bool = True, **extra_body: object
    ) -> RequestRecord:
        """A streaming ``/v1/completions`` request; as ``chat``."""
        return self.request(COMPLETIONS, prompt, max_tokens, extra_body, collect_text)

    def request(
        self,
        endpoint: Endpoint,
        prompt: str | Messages,
        max_tokens: int | None,
        extra_body: Mapping[str, object],
        collect_text: bool,
        record: RequestRecord | None = None,
    ) -> RequestRecord:
        """Send one request and record it. ``record`` may come with the open loop's fields filled in."""
        run = self.run
        context = run.context
        if not context.budget.take():
            raise StopUser()
        settings = context.settings
        started = time.perf_counter()
        rec = record if record is not None else RequestRecord()
        counted = False
        try:
            try:
                model = str(extra_body.get("model") or context.model(self.host))
            except ConfigError as exc:
                rec.start_time, rec.error = time.time(), str(exc)
                run.recorder.record(rec, endpoint, time.perf_counter() - started)
                return rec
            body = build_body(
                endpoint,
                model,
                prompt,
                max_tokens or settings.max_tokens,
                ignore_eos=settings.ignores_eos,
                temperature=settings.temperature,
                extra_body=extra_body,
            )
            rec.stage = rec.stage or context.stage_label(time.time())
            host = rec.host = self.chooser.pick()
            context.in_flight += 1
            self.chooser.started(host)
            try:
                self.transport_for(host).send(endpoint, body, rec, collect_text)
            except GreenletExit:  # the test is stopping: the transport closed the record as cancelled
                if rec.start_time:  # (an open-loop request stopped before its due time was never sent)
                    run.recorder.record(rec, endpoint, time.perf_counter() - started)
                raise
            finally:
                context.in_flight -= 1
                self.chooser.finished(host)
            if not rec.success and not rec.status:
                run.recorder.record(rec, endpoint, time.perf_counter() - started)
                gevent.sleep(FAILED_CONNECT_PAUSE_S)  # no response at all: do not hammer a dead server
                return rec
            run.recorder.record_soon(rec, endpoint, time.perf_counter() - started)  # counts it against the budget
            counted = True
            return rec
        except (GreenletExit, StopUser):
            raise
        except Exception as exc:  # a bug of ours must not lose the sample: record it as a failure
            logger.exception("client error")
            rec.start_time = rec.start_time or time.time()
            rec.success, rec.error = False, f"client error: {exc!r}"
            run.recorder.record(rec, endpoint, time.perf_counter() - started)
            return rec
        finally:
            if not counted:
                context.budget.finish()


def socket_transport(context: RunContext, host: str) -> SocketTransport:
    """The suite's own client to ``host``, with the run's headers, timeouts, stamping, reactor and pacer."""
    s = context.settings
    return SocketTransport(
        Target.parse(host),
        context.headers,
        stream_timeout=s.stream_timeout,
        request_timeout=s.request_timeout,
        kernel_timestamps=s.kernel_timestamps,
        reactor=context.reactor,
        pacer=context.pacer,
    )


class LLMUser(User):
    """Base of the suite's users: ``self.client`` streams and records; subclasses add tasks.

    A closed loop with no wait by default: each user sends its next request as soon as
    the previous one ends, so ``-u`` is the concurrency.
    """

    abstract = True
    wait_time = constant(0)

    def make_transport(self, run: LLMRun, host: str) -> Transport:
        """This user's transport to one host (of -H's)."""
        return socket_transport(run.context, host)

    def on_start(self) -> None:
        run = self.llm_run = get_run(self.environment)  # not "run": that is Locust's User.run
        host = self.host or ""
        self.client = LLMClient(run, host, self.make_transport(run, primary(host)),
                                lambda one: self.make_transport(run, one))  # fmt: skip

    def on_stop(self) -> None:
        self.client.close()


def send_next_prompt(user: LLMUser) -> None:
    """The built-in task: the run's next prompt, or with ``--turns K`` the next turn of a conversation."""
    run = user.llm_run
    if not run.prompts.ready:  # the test could not start (said in one line): the run is stopping
        raise StopUser()
    settings = run.context.settings
    endpoint = run.context.endpoint
    if settings.scheduled:  # the schedule sends the requests (users/open_loop.py, users/sweep.py): idle
        gevent.sleep(OPEN_LOOP_IDLE_S)
        return
    if settings.turns <= 1:
        prompt = run.prompts.next_prompt()
        user.client.request(endpoint, prompt.content, prompt.max_tokens, {}, False,
                            RequestRecord(unique_from=prompt.unique_from))  # fmt: skip
        return
    talk: Conversation = user.__dict__.setdefault("conversation", Conversation(settings.seed, id(user)))
    if talk.continues(settings.turns):
        messages = talk.follow_up(settings.turn_tokens)
    else:
        prompt = run.prompts.next_prompt()
        talk.max_tokens = prompt.max_tokens
        messages = talk.start(prompt.content)
    talk.last = user.client.request(endpoint, messages, talk.max_tokens, {}, True)


class Conversation:
    """A user's multi-turn conversation: its history, and how many turns it has had."""

    def __init__(self, seed: int, user_id: int) -> None:
        self.rng = random.Random(f"{seed}-{user_id}")
        self.history: Messages = []
        self.turn = 0
        self.max_tokens: int | None = None  # the first prompt's own output length, if it has one
        self.last: RequestRecord | None = None

    def continues(self, turns: int) -> bool:
        last = self.last
        return 0 < self.turn < turns and last is not None and last.success

    def start(self, first_message: str) -> Messages:
        self.history = [{"role": "user", "content": first_message}]
        self.turn = 1
        return list(self.history)

    def follow_up(self, turn_tokens: int) -> Messages:
        assert self.last is not None
        question = join(words(self.rng, turn_tokens))
        self.history += [{"role": "assistant", "content": self.last.text}, {"role": "user", "content": question}]
        self.turn += 1
        return list(self.history)
