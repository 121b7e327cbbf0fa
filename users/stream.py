"""One streaming request, timed: the hot path of the suite.

No Locust import. ``clock`` is monotonic seconds and ``wall`` unix seconds;
both are injectable so tests can script them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from users.http import Connection, TransportError
from users.record import CHAT_TEXT_KEYS, COMPLETION_TEXT_KEYS, RequestRecord, StreamAccumulator
from users.sse import ChunkedDecoder, ProtocolError, SSEDecoder


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    path: str
    text_keys: tuple[bytes, ...]


CHAT = Endpoint("chat", "/v1/chat/completions", CHAT_TEXT_KEYS)
CANCELLED = "cancelled: the test stopped while the request was in flight"

COMPLETIONS = Endpoint("completions", "/v1/completions", COMPLETION_TEXT_KEYS)
ENDPOINTS = {e.name: e for e in (CHAT, COMPLETIONS)}


def build_payload(
    endpoint: Endpoint,
    model: str,
    prompt: str | list[dict[str, str]],  # a user message, or the whole conversation
    max_tokens: int,
    *,
    ignore_eos: bool = False,
    temperature: float | None = None,
) -> bytes:
    """The JSON body of a streaming request, with usage requested at the end."""
    body: dict[str, object] = {"model": model}
    if endpoint is CHAT:
        body["messages"] = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    body["max_tokens"] = max_tokens
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    if ignore_eos:
        body["ignore_eos"] = True
    if temperature is not None:
        body["temperature"] = temperature
    return orjson.dumps(body)


def stream_request(
    conn: Connection,
    endpoint: Endpoint,
    payload: bytes,
    headers: dict[str, str],
    *,
    clock: Callable[[], float] = time.perf_counter,
    wall: Callable[[], float] = time.time,
    deadline_s: float | None = None,
    record: RequestRecord | None = None,
    collect_text: bool = False,
) -> RequestRecord:
    """Send one streaming request and time every SSE event as its bytes arrive.

    Never raises for a failed request: the record says what went wrong.
    ``deadline_s`` bounds the whole request (``--request-timeout``). When the
    caller is interrupted (the test stops, Ctrl-C), the ``record`` it passed in
    is closed as cancelled, keeping what was measured, and the interruption
    propagates.
    """
    if record is None:
        record = RequestRecord()
    raw = conn.build_request("POST", endpoint.path, payload, headers)
    record.start_time = wall()
    start = clock()
    acc = StreamAccumulator(record, start, endpoint.text_keys, collect_text)
    try:
        conn.send(raw)
        head = conn.read_head()
        record.status = head.status
        if head.status != 200:
            body = conn.read_body(head, limit=65536)
            return acc.finish(_http_error(head.status, head.reason, body))
        chunked = ChunkedDecoder() if head.chunked else None
        sse = SSEDecoder()
        remaining = head.content_length
        on_event = acc.on_event
        data = conn.recv()  # whatever came with the headers, or the next read
        t = clock()
        while data:
            if chunked is not None:
                payload_bytes = chunked.feed(data)
            else:
                payload_bytes = data
                if remaining is not None:
                    remaining -= len(data)
            if payload_bytes:
                for event in sse.feed(payload_bytes):
                    on_event(event, t)
            if (chunked is not None and chunked.done) or (remaining is not None and remaining <= 0):
                break
            if deadline_s is not None and t - start > deadline_s:
                conn.close()
                return acc.finish(f"request timed out after {deadline_s:g} s")
            data = conn.recv()
            t = clock()
        else:
            conn.close()
            if (chunked is not None and not chunked.done) or (remaining is not None and remaining > 0):
                return acc.finish("connection closed in the middle of the stream")
        if head.headers.get("connection", "").lower() == "close":
            conn.close()
        if sse.pending.strip():
            return acc.finish("stream ended inside an incomplete event")
        return acc.finish()
    except TransportError as exc:
        return acc.finish(str(exc))
    except ProtocolError as exc:
        conn.close()
        return acc.finish(f"bad stream framing: {exc}")
    except BaseException:  # interrupted from outside: keep the sample, then let it through
        conn.close()
        acc.finish(CANCELLED)
        record.cancelled = True
        raise


def _http_error(status: int, reason: str, body: bytes) -> str:
    message = ""
    try:
        obj = orjson.loads(body)
        if isinstance(obj, dict):
            err = obj.get("error", obj)
            if isinstance(err, dict):
                message = str(err.get("message") or err.get("detail") or "")
            elif isinstance(err, str):
                message = err
            if not message and "detail" in obj:
                message = str(obj["detail"])
    except orjson.JSONDecodeError:
        message = body[:200].decode("utf-8", "replace").strip()
    message = " ".join(message.split())[:300]
    return f"HTTP {status} {reason}".rstrip() + (f": {message}" if message else "")
