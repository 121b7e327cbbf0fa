"""The default user: streaming chat (or completions) against vLLM's OpenAI-compatible API.

A closed loop with no wait: each user sends its next request as soon as the
previous one ends, so ``-u`` is the concurrency. With ``--turns K`` each user
holds a conversation and re-sends its whole history for K turns.
"""

from __future__ import annotations

import logging
import random
import time

import gevent
from gevent import GreenletExit
from locust import User, constant, task
from locust.exception import StopUser

from prompts.text import join, words
from users.http import Connection, Target
from users.options import ConfigError
from users.record import RequestRecord
from users.run import LLMRun, get_run
from users.stream import build_payload, stream_request

logger = logging.getLogger(__name__)

FAILED_CONNECT_PAUSE_S = 0.05


class VLLMUser(User):
    """Streams one completion at a time over a keep-alive connection."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.run: LLMRun = get_run(self.environment)
        settings = self.run.settings
        self.conn = Connection(
            Target.parse(self.host), read_timeout=settings.stream_timeout, kernel_timestamps=settings.kernel_timestamps
        )
        self.history: list[dict[str, str]] = []
        self.turn = 0
        self._rng = random.Random(f"{self.run.settings.seed}-{id(self)}")

    def on_stop(self) -> None:
        self.conn.close()

    def _conversation(self, first_message: str, last: RequestRecord | None) -> list[dict[str, str]]:
        """The messages of the next turn: a new conversation, or the history plus a follow-up."""
        settings = self.run.settings
        if self.turn == 0 or self.turn >= settings.turns or last is None or not last.success:
            self.history = [{"role": "user", "content": first_message}]
            self.turn = 1
        else:
            follow_up = join(words(self._rng, settings.turn_tokens))
            self.history += [{"role": "assistant", "content": last.text}, {"role": "user", "content": follow_up}]
            self.turn += 1
        return list(self.history)

    @task
    def generate(self) -> None:
        run = self.run
        if not run.budget.take():
            raise StopUser()
        settings = run.settings
        started = time.perf_counter()
        counted = False
        try:
            try:
                model = run.model(self.host)
            except ConfigError as exc:
                run.record(RequestRecord(start_time=time.time(), error=str(exc)), time.perf_counter() - started)
                return
            multi_turn = settings.turns > 1
            if multi_turn and self.turn and self.turn < settings.turns:
                content = ""  # a follow-up turn: no new prompt from the source
            else:
                prompt = run.next_prompt()
                content = prompt.content
                self._max_tokens = prompt.max_tokens or settings.max_tokens
            messages = self._conversation(content, getattr(self, "_last", None)) if multi_turn else content
            payload = build_payload(
                run.endpoint,
                model,
                messages,
                getattr(self, "_max_tokens", settings.max_tokens),
                ignore_eos=settings.ignore_eos,
                temperature=settings.temperature,
            )
            rec = RequestRecord()
            run.in_flight += 1
            try:
                stream_request(
                    self.conn,
                    run.endpoint,
                    payload,
                    run.headers,
                    deadline_s=settings.request_timeout,
                    record=rec,
                    collect_text=multi_turn,
                    reactor=run.reactor,
                )
            except GreenletExit:  # the test is stopping: record the in-flight request as cancelled
                run.record(rec, time.perf_counter() - started)
                raise
            finally:
                run.in_flight -= 1
            self._last = rec
            if not rec.success and not rec.status:
                run.record(rec, time.perf_counter() - started)
                gevent.sleep(FAILED_CONNECT_PAUSE_S)  # no response at all: do not hammer a dead server
                return
            run.record_soon(rec, time.perf_counter() - started)  # counts it against the budget, too
            counted = True
        except (GreenletExit, StopUser):
            raise
        except Exception as exc:  # a bug of ours must not lose the sample: record it as a failure
            logger.exception("client error")
            rec = RequestRecord(start_time=time.time(), error=f"client error: {exc!r}")
            run.record(rec, time.perf_counter() - started)
        finally:
            if not counted:
                run.budget.finish()
