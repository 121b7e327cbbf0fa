"""A second transport: the official ``openai`` SDK, for testing through the client an application uses.

Same measurement (vLLM ``bench serve`` definitions) and the same recording as
``VLLMUser``; select it with ``locust -f locustfile.py OpenAISDKUser``. The SDK
parses every chunk into pydantic objects, which costs far more CPU per token than
``VLLMUser``: see the README's benchmark table before using it at high concurrency.
"""

from __future__ import annotations

import logging
import time

from gevent import GreenletExit
from locust import User, constant, task
from locust.exception import StopUser

from users.options import ConfigError
from users.record import RequestRecord
from users.run import LLMRun, get_run
from users.stream import CANCELLED

for _name in ("httpx", "httpx2"):  # one INFO line per request otherwise
    logging.getLogger(_name).setLevel(logging.WARNING)


def requested(argv: list[str], environ: dict[str, str]) -> bool:
    """Run the SDK user only when named on the command line (or when a worker: the master names classes)."""
    named = "OpenAISDKUser" in argv or "OpenAISDKUser" in environ.get("LOCUST_USER_CLASSES", "").split()
    return named or "--worker" in argv or environ.get("LOCUST_MODE_WORKER", "").lower() in ("1", "true")


class OpenAISDKUser(User):
    """Streams through ``openai.OpenAI`` (httpx underneath, made cooperative by gevent)."""

    abstract = False
    wait_time = constant(0)

    def on_start(self) -> None:
        import openai  # imported only when this user runs: it adds half a second to every start-up

        self._openai = openai
        self.run: LLMRun = get_run(self.environment)
        s = self.run.settings
        self.client = openai.OpenAI(
            base_url=self.host.rstrip("/") + "/v1",
            api_key=s.api_key or "EMPTY",
            timeout=s.request_timeout or s.stream_timeout,
            max_retries=0,  # each request is one sample
        )

    def on_stop(self) -> None:
        self.client.close()

    @task
    def generate(self) -> None:
        run = self.run
        if not run.budget.take():
            raise StopUser()
        s = run.settings
        rec = RequestRecord(start_time=time.time())
        try:
            try:
                model = run.model(self.host)
            except ConfigError as exc:
                rec.error = str(exc)
                run.record(rec, 0.0)
                return
            prompt = run.next_prompt()
            extra = {"ignore_eos": True} if s.ignore_eos else None
            kwargs = {"temperature": s.temperature} if s.temperature is not None else {}
            chat = run.endpoint.name == "chat"
            start = time.perf_counter()
            rec.start_time = time.time()
            run.in_flight += 1
            try:
                self._stream(rec, start, chat, model, prompt, s, extra, kwargs)
            except GreenletExit:
                rec.cancelled, rec.success, rec.error = True, False, CANCELLED
                run.record(rec, time.perf_counter() - start)
                raise
            finally:
                run.in_flight -= 1
            run.record(rec, time.perf_counter() - start)
        finally:
            run.budget.finish()

    def _stream(self, rec: RequestRecord, start: float, chat: bool, model: str, prompt, s, extra, kwargs) -> None:
        first = last = None
        chunks = 0
        try:
            if chat:
                stream = self.client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": prompt.content}],
                    max_tokens=prompt.max_tokens or s.max_tokens, stream=True,
                    stream_options={"include_usage": True}, extra_body=extra, **kwargs,
                )  # fmt: skip
            else:
                stream = self.client.completions.create(
                    model=model, prompt=prompt.content, max_tokens=prompt.max_tokens or s.max_tokens, stream=True,
                    stream_options={"include_usage": True}, extra_body=extra, **kwargs,
                )  # fmt: skip
            for chunk in stream:
                now = time.perf_counter()
                rec.request_id = rec.request_id or chunk.id
                if chunk.choices:
                    choice = chunk.choices[0]
                    text = (choice.delta.content or getattr(choice.delta, "reasoning_content", None)) if chat else (
                        choice.text)  # fmt: skip
                    if choice.finish_reason:
                        rec.finish_reason = choice.finish_reason
                    if text:
                        if first is None:
                            first = now
                        else:
                            rec.itl.append(now - last)
                        last = now
                        chunks += 1
                if chunk.usage is not None:
                    rec.prompt_tokens = chunk.usage.prompt_tokens
                    rec.output_tokens = chunk.usage.completion_tokens
                    rec.usage_source = "server"
                    details = chunk.usage.prompt_tokens_details
                    if details is not None and details.cached_tokens is not None:
                        rec.cached_tokens = details.cached_tokens
            rec.status = 200
        except self._openai.APIStatusError as exc:
            rec.status = exc.status_code
            rec.error = f"HTTP {exc.status_code}: {exc.message}"
        except (self._openai.APIError, ValueError) as exc:
            rec.error = f"{exc.__class__.__name__}: {exc}"
        if first is not None:
            rec.ttft = first - start
            rec.e2e = last - start
        if rec.output_tokens is None and chunks:
            rec.output_tokens, rec.usage_source = chunks, "chunks"
        if not rec.error and first is None:
            rec.error = "stream carried no tokens"
        rec.success = not rec.error
