"""How a streaming request reaches the server: the suite's own socket client, or the openai SDK.

A transport sends one request body and fills a ``RequestRecord``. Both feed every SSE
payload, with its arrival time, to the same ``measure.StreamAccumulator``, so they
measure by the same rules: TTFT from just before the send, text (content or reasoning)
chunks, usage, in-stream error frames, ``[DONE]``. Neither raises for a failed request;
interrupted from outside, both close the record as cancelled and let the interruption
through.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from llmclient.errors import TransportError
from llmclient.http import Connection, Target
from llmclient.measure import RequestRecord, StreamAccumulator
from llmclient.stream import CHAT, Endpoint, accumulator, http_error, stream_request

if TYPE_CHECKING:
    from llmclient.pacer import Pacer
    from llmclient.reactor import StreamReactor


class Transport(Protocol):
    def send(
        self, endpoint: Endpoint, body: dict[str, object], record: RequestRecord, collect_text: bool
    ) -> RequestRecord: ...

    def prepare(self) -> None:
        """Get ready to send at once (connect ahead); failures show in the next ``send``."""
        ...

    def close(self) -> None: ...


class SocketTransport:
    """The suite's own HTTP/1.1 client over one keep-alive connection (the default; the cheapest)."""

    def __init__(
        self,
        target: Target,
        headers: dict[str, str],
        *,
        stream_timeout: float = 600.0,
        request_timeout: float | None = None,
        kernel_timestamps: bool = True,
        reactor: StreamReactor | None = None,
        pacer: Pacer | None = None,
        session_header: str = "",
    ) -> None:
        self.conn = Connection(target, read_timeout=stream_timeout, kernel_timestamps=kernel_timestamps)
        self.headers = headers
        # a session's requests carry its id in this header (routers keep a session where its history is)
        self.session_header = session_header
        self.request_timeout = request_timeout
        self.reactor = reactor
        # sends a record with a scheduled_time at that time
        self.pacer = pacer

    def send(
        self, endpoint: Endpoint, body: dict[str, object], record: RequestRecord, collect_text: bool
    ) -> RequestRecord:
        headers = self.headers
        if self.session_header and record.session_id:
            headers = {**headers, self.session_header: record.session_id}
        return stream_request(
            self.conn,
            endpoint,
            orjson.dumps(body),
            headers,
            deadline_s=self.request_timeout,
            record=record,
            collect_text=collect_text,
            reactor=self.reactor,
            pacer=self.pacer,
        )

    def prepare(self) -> None:
        with contextlib.suppress(TransportError):
            self.conn.connect()

    def close(self) -> None:
        self.conn.close()


# keyword arguments of the SDK's create(); the rest of a body goes in extra_body
SDK_KEYWORDS = frozenset(
    {
        "model",
        "messages",
        "prompt",
        "max_tokens",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "n",
        "tools",
        "tool_choice",
        "response_format",
        "logprobs",
        "presence_penalty",
        "frequency_penalty",
    }
)


class OpenAISDKTransport:
    """Through ``openai.OpenAI`` (httpx underneath, made cooperative by gevent), as an application would.

    The SDK parses every chunk into pydantic objects, which costs far more CPU per token than
    ``SocketTransport``. The accumulator sees each SSE payload as the SDK's own decoder hands it
    over (``[DONE]`` and error frames included), dated when the SDK yields it.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout: float,
        clock: Callable[[], float] = time.perf_counter,
        session_header: str = "",
    ) -> None:
        # imported only when used: it adds half a second to every start-up
        import openai

        self._openai = openai
        self.client = openai.OpenAI(
            base_url=base_url.rstrip("/") + "/v1",
            api_key=api_key or "EMPTY",
            timeout=timeout,
            # each request is one sample
            max_retries=0,
        )
        self.clock = clock
        self.session_header = session_header

    def send(
        self, endpoint: Endpoint, body: dict[str, object], record: RequestRecord, collect_text: bool
    ) -> RequestRecord:
        openai = self._openai
        kwargs: dict[str, Any] = {k: v for k, v in body.items() if k in SDK_KEYWORDS}
        extra = {k: v for k, v in body.items() if k not in SDK_KEYWORDS}
        if extra:
            kwargs["extra_body"] = extra
        if self.session_header and record.session_id:
            kwargs["extra_headers"] = {self.session_header: record.session_id}
        create = self.client.chat.completions.create if endpoint is CHAT else self.client.completions.create
        record.start_time = time.time()
        acc = accumulator(endpoint, record, self.clock(), collect_text)
        if endpoint.name not in ("chat", "completions"):
            return acc.finish(
                f"the OpenAI SDK transport sends chat and completions; --endpoint {endpoint.name} needs the default one"
            )
        try:
            stream = create(**kwargs)
            record.status = stream.response.status_code
            self._watch_events(stream, acc)
            for _chunk in stream:
                pass
        except openai.APIStatusError as exc:
            record.status = exc.status_code
            return acc.finish(http_error(exc.status_code, exc.response.reason_phrase, _body_of(exc.response)))
        # an error frame (already seen by the accumulator) or a connection failure
        except openai.APIError as exc:
            return acc.finish(f"{exc.__class__.__name__}: {exc}")
        except ValueError as exc:
            return acc.finish(f"malformed stream: {exc}")
        # interrupted from outside: keep the sample, then let it through
        except BaseException:
            acc.cancel()
            raise
        return acc.finish()

    def _watch_events(self, stream: Any, acc: StreamAccumulator) -> None:
        """Let the accumulator see each event the SDK decodes, before the SDK acts on it.

        ``Stream.__stream__`` reads its events through ``_iter_events`` (openai 3.x), and ends
        quietly both at ``[DONE]`` and at the end of the body: only the events tell them apart.
        """
        events: Callable[[], Iterator[Any]] = stream._iter_events
        clock = self.clock

        def watched() -> Iterator[Any]:
            for sse in events():
                acc.on_event(sse.data.encode(), clock())
                yield sse

        stream._iter_events = watched

    def prepare(self) -> None:
        """The SDK's connection pool connects when it sends."""

    def close(self) -> None:
        self.client.close()


def _body_of(response: Any) -> bytes:
    try:
        return bytes(response.read())
    # the body could not be read: the status alone says what happened
    except Exception:
        return b""
