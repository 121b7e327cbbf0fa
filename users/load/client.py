"""One user's client: streams, measures and records each call as one request of the run.

``LLMUser``'s ``self.client`` (users/base.py) and the open loop's senders (open_loop.py) are this one
class: the ``-n`` budget, the model, the host, requests in flight, cancellation and recording.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence

import gevent
from gevent import GreenletExit
from locust.exception import StopUser

from llmclient.errors import ConfigError
from llmclient.measure import RequestRecord
from llmclient.stream import CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, Endpoint, Input, Messages, build_body
from llmclient.tracecontext import new_trace_id
from llmclient.transports import SocketTransport, Transport
from prompts.images import image_ref, with_images
from prompts.source import Prompt
from users.services.run import LLMRun
from users.settings.context import RunContext

logger = logging.getLogger(__name__)

FAILED_CONNECT_PAUSE_S = 0.05


class LLMClient:
    """One user's client: streams, measures and records each call as one request of the run.

    With several hosts in ``-H`` each request goes to the one ``--host-strategy`` picks, over a
    transport of its own (``make_transport(host)``); ``transport`` is the first host's."""

    def __init__(
        self, run: LLMRun, host: str, transport: Transport, make_transport: Callable[[str], Transport] | None = None
    ) -> None:
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
        *,
        max_tokens: int | None = None,
        collect_text: bool = True,
        images: Sequence[str] | None = None,
        **extra_body: object,
    ) -> RequestRecord:
        """A streaming ``/v1/chat/completions`` request (a string is one user message).

        ``max_tokens`` defaults to ``--max-tokens``; ``images`` (URLs, data: URLs or image files) go
        before a string's text, in place of ``--images``'; ``extra_body`` goes into the request's JSON
        as it is (``tools=...``, ``temperature=...``, ``model=...``). Returns the record:
        ``text``, ``usage``, ``finish_reason``, ``ttft_s``, ``e2e_s``, ``success``, ``error``.
        Raises StopUser when the run's ``-n`` is spent.
        """
        return self.request(
            CHAT, messages, max_tokens=max_tokens, extra_body=extra_body, collect_text=collect_text, images=images
        )

    def completion(
        self, prompt: str, *, max_tokens: int | None = None, collect_text: bool = True, **extra_body: object
    ) -> RequestRecord:
        """A streaming ``/v1/completions`` request; as ``chat``."""
        return self.request(
            COMPLETIONS, prompt, max_tokens=max_tokens, extra_body=extra_body, collect_text=collect_text
        )

    def respond(
        self,
        input: str | Messages,
        *,
        max_tokens: int | None = None,
        collect_text: bool = True,
        images: Sequence[str] | None = None,
        **extra_body: object,
    ) -> RequestRecord:
        """A streaming ``/v1/responses`` request (``input``: a string or messages; ``max_tokens`` is its
        ``max_output_tokens``); measured and recorded as ``chat``, ``images`` too."""
        return self.request(
            RESPONSES, input, max_tokens=max_tokens, extra_body=extra_body, collect_text=collect_text, images=images
        )

    def embed(self, input: str | list[str], **extra_body: object) -> RequestRecord:
        """An ``/v1/embeddings`` request: one JSON answer, its latency ``e2e_s``, the tokens embedded
        ``usage["prompt_tokens"]`` (no TTFT: no token streams back)."""
        return self.request(EMBEDDINGS, input, extra_body=extra_body)

    def send_prompt(self, prompt: Prompt, record: RequestRecord | None = None) -> RequestRecord:
        """One of the run's prompts, on the run's endpoint (the built-in task, the open loop's sends)."""
        rec = record if record is not None else RequestRecord()
        rec.unique_from = prompt.unique_from
        if prompt.ideal_cached is not None:
            rec.ideal_cached_tokens = prompt.ideal_cached
        endpoint, batch = self.run.context.endpoint, self.run.context.settings.prompts.embed_batch
        # --embed-batch: the run's next prompts in one input list
        if endpoint is EMBEDDINGS and batch > 1:
            more = [self.run.prompts.next_prompt().content for _ in range(batch - 1)]
            return self.request(endpoint, [prompt.content, *more], record=rec)
        return self.request(endpoint, prompt.content, max_tokens=prompt.max_tokens, record=rec, images=prompt.images)

    def request(
        self,
        endpoint: Endpoint,
        prompt: Input,
        *,
        max_tokens: int | None = None,
        extra_body: Mapping[str, object] | None = None,
        collect_text: bool = False,
        record: RequestRecord | None = None,
        images: Sequence[str] | None = None,
    ) -> RequestRecord:
        """Send one request and record it. ``max_tokens`` defaults to the prompt's (``--max-tokens``);
        ``extra_body`` goes into the request's JSON; ``collect_text`` keeps the answer's text on the record;
        ``record`` may come with the open loop's fields filled in; ``images`` (URLs) go before a text
        prompt's text, else ``--images``' do."""
        run = self.run
        context = run.context
        rec = record if record is not None else RequestRecord()
        if not context.units.take(rec):
            raise StopUser()
        started = time.perf_counter()
        counted = False
        try:
            body = self._prepare(rec, endpoint, prompt, max_tokens, extra_body or {}, images)
            if body is None:
                run.recorder.record(rec, endpoint, time.perf_counter() - started)
                return rec
            self._send(endpoint, body, rec, collect_text, started)
            if not rec.success and not rec.status:
                run.recorder.record(rec, endpoint, time.perf_counter() - started)
                # no response at all: do not hammer a dead server
                gevent.sleep(FAILED_CONNECT_PAUSE_S)
                return rec
            # counts it against the budget
            run.recorder.record_soon(rec, endpoint, time.perf_counter() - started)
            counted = True
            return rec
        except (GreenletExit, StopUser):
            raise
        # a bug of ours must not lose the sample: record it as a failure
        except Exception as exc:
            logger.exception("client error")
            rec.start_time = rec.start_time or time.time()
            rec.success, rec.error = False, f"client error: {exc!r}"
            run.recorder.record(rec, endpoint, time.perf_counter() - started)
            return rec
        finally:
            if not counted:
                context.units.finish(rec)

    def _prepare(
        self,
        rec: RequestRecord,
        endpoint: Endpoint,
        prompt: Input,
        max_tokens: int | None,
        extra_body: Mapping[str, object],
        images: Sequence[str] | None,
    ) -> dict[str, object] | None:
        """The request's body, its record's fields filled in; None (the record says why) for a bad prompt."""
        try:
            body, rec.image_count = self._body(endpoint, prompt, max_tokens, extra_body, images)
        except ConfigError as exc:
            rec.start_time, rec.error = time.time(), str(exc)
            return None
        rec.model = str(body.get("model") or "")
        rec.stage = rec.stage or self.run.context.stage_label(time.time())
        if self.run.context.settings.measurement.trace_context and not rec.trace_id:
            rec.trace_id = new_trace_id()
        return body

    def _body(
        self,
        endpoint: Endpoint,
        prompt: Input,
        max_tokens: int | None,
        extra_body: Mapping[str, object],
        images: Sequence[str] | None,
    ) -> tuple[dict[str, object], int | None]:
        """The request's JSON and the images in it (None: the run has none); raises ConfigError when the
        model cannot be known."""
        context = self.run.context
        settings = context.settings
        model = str(extra_body.get("model") or context.next_model(self.host))
        count = None
        # images go before the text
        if endpoint.messages and isinstance(prompt, str):
            urls = _urls(images) if images is not None else context.next_images() if context.images else None
            if urls is not None:
                count = len(urls)
            if urls:
                message: dict[str, object] = {"role": "user", "content": with_images(prompt, urls)}
                prompt = [message]
        body = build_body(
            endpoint,
            model,
            prompt,
            max_tokens or settings.prompts.max_tokens,
            ignore_eos=settings.ignores_eos,
            temperature=settings.prompts.temperature,
            extra_body=extra_body,
        )
        return body, count

    def _send(
        self, endpoint: Endpoint, body: dict[str, object], rec: RequestRecord, collect_text: bool, started: float
    ) -> None:
        """Send to the host the chooser picks, counted in flight meanwhile."""
        context = self.run.context
        host = rec.host = self.chooser.pick(rec.session_id)
        context.in_flight += 1
        self.chooser.started(host)
        try:
            self.transport_for(host).send(endpoint, body, rec, collect_text)
        # the test is stopping: the transport closed the record as cancelled
        except GreenletExit:
            # (an open-loop request stopped before its due time was never sent)
            if rec.start_time:
                self.run.recorder.record(rec, endpoint, time.perf_counter() - started)
            raise
        finally:
            context.in_flight -= 1
            self.chooser.finished(host)


def socket_transport(context: RunContext, host: str) -> SocketTransport:
    """The suite's own client to ``host``, with the run's headers, timeouts, stamping, reactor and pacer."""
    s = context.settings
    return SocketTransport(
        context.target(host),
        context.headers,
        stream_timeout=s.server.stream_timeout,
        request_timeout=s.server.request_timeout,
        kernel_timestamps=s.measurement.kernel_timestamps,
        reactor=context.reactor,
        pacer=context.pacer,
        session_header=s.load.session_header,
    )


def _urls(images: Sequence[str]) -> list[str]:
    """Images as a request carries them: URLs as they are, files read (ConfigError for one that cannot be)."""
    try:
        return [image_ref(ref, os.getcwd()) for ref in images]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
