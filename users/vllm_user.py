"""The default user: streaming chat (or completions) against vLLM's OpenAI-compatible API.

A closed loop with no wait: each user sends its next request as soon as the
previous one ends, so ``-u`` is the concurrency.
"""

from __future__ import annotations

import time

from gevent import GreenletExit
from locust import User, constant, task
from locust.exception import StopUser

from users.http import Connection, Target
from users.options import ConfigError
from users.record import RequestRecord
from users.run import LLMRun, get_run
from users.stream import build_payload, stream_request


class VLLMUser(User):
    """Streams one completion at a time over a keep-alive connection."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.run: LLMRun = get_run(self.environment)
        settings = self.run.settings
        self.conn = Connection(Target.parse(self.host), read_timeout=settings.stream_timeout)

    def on_stop(self) -> None:
        self.conn.close()

    @task
    def generate(self) -> None:
        run = self.run
        if not run.budget.take():
            raise StopUser()
        settings = run.settings
        started = time.perf_counter()
        try:
            try:
                model = run.model(self.host)
            except ConfigError as exc:
                rec = RequestRecord(start_time=time.time(), error=str(exc))
                run.record(rec, time.perf_counter() - started)
                return
            payload = build_payload(
                run.endpoint,
                model,
                run.prompts.next_prompt(),
                settings.max_tokens,
                ignore_eos=settings.ignore_eos,
                temperature=settings.temperature,
            )
            rec = RequestRecord()
            try:
                stream_request(
                    self.conn, run.endpoint, payload, run.headers, deadline_s=settings.request_timeout, record=rec
                )
            except GreenletExit:  # the test is stopping: record the in-flight request as cancelled
                run.record(rec, time.perf_counter() - started)
                raise
            run.record(rec, time.perf_counter() - started)
        finally:
            run.budget.finish()
