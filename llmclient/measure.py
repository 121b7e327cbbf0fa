"""Per-request measurement with the semantics of vLLM's ``bench serve``: the one place its rules live.

Plain Python, no I/O. The caller owns the clock: it passes the monotonic time at
which each payload arrived, so tests drive it with a scripted clock and the numbers
are exact. Every transport feeds the same ``StreamAccumulator``: raw SSE payloads
(``on_event``), whichever client read them.

- TTFT: start -> first SSE event that carries generated text (role-only and
  empty chunks do not count).
- ITL: the gaps between successive text-carrying events.
- E2E: start -> last text-carrying event (usage chunk and ``[DONE]`` excluded).
- TPOT: (e2e - ttft) / (output_tokens - 1), only when output_tokens > 1.
- Token counts: the server's ``usage``; text events are counted only when the
  server sends none, and such records say so (``usage_source == "chunks"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

CANCELLED = "cancelled: the test stopped while the request was in flight"
# a chat delta with any of these carries text
TEXT_FIELDS = ("content", "reasoning_content", "reasoning")
# vLLM's reasoning parsers (the older name, the newer)
REASONING_FIELDS = ("reasoning_content", "reasoning")
# Keys whose non-empty string value marks a chunk that carries generated text.
CHAT_TEXT_KEYS = tuple(f'"{name}":"'.encode() for name in TEXT_FIELDS)
REASONING_KEYS = frozenset(f'"{name}":"'.encode() for name in REASONING_FIELDS)
COMPLETION_TEXT_KEYS = (b'"text":"',)
# a chat or completion chunk in mid-stream (the fast path's sign)
TEXT_MARK = b'"finish_reason":null'
# The Responses API's answer deltas: their text key, and their sign (reasoning deltas are parsed in full)
RESPONSE_TEXT_KEYS = (b'"delta":"',)
RESPONSE_TEXT_MARK = b'"type":"response.output_text.delta"'


@dataclass(slots=True)
class RequestRecord:
    """What one request measured. Times in seconds; ``start_time`` is unix time."""

    start_time: float = 0.0
    request_id: str = ""
    ttft_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    e2e_s: float | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    output_tokens: int | None = None
    # "server", "chunks" or "" (nothing received)
    usage_source: str = ""
    finish_reason: str = ""
    status: int = 0
    success: bool = False
    cancelled: bool = False
    error: str = ""
    # the generated text, only when asked for (multi-turn runs)
    text: str = ""
    # open-loop runs: when the request was due (unix s), how long it waited for a free slot
    # (--max-concurrency), and its stage
    scheduled_time: float | None = None
    queue_s: float | None = None
    stage: str = ""
    # a sweep's or capacity search's level number
    level: str = ""
    # --repeat: the repetition it belongs to
    repeat: int | None = None
    # tokens after which the prompt is this run's alone (synthetic prompts): a cache hit beyond them
    # means the server kept it from an earlier run
    unique_from: int | None = None
    # the host (of -H's) the request went to
    host: str = ""
    # the model (or LoRA adapter) it asked for
    model: str = ""
    # --images: the images in its prompt
    image_count: int | None = None
    # a replayed trace's row (0-based)
    trace_index: int | None = None
    # what an unbounded prefix cache would hold for it (the trace's hash ids)
    ideal_cached_tokens: int | None = None
    # to the first answer token (not reasoning): a reasoning model's real wait
    answer_ttft_s: float | None = None
    # the server's usage where it says, else the reasoning chunks counted
    reasoning_tokens: int | None = None
    # --trace-context: the W3C trace id sent in its traceparent header
    trace_id: str = ""
    # sent a second time: the first send's kept connection closed unanswered
    resent: bool = False
    # that first attempt's error
    resent_error: str = ""
    # a session's id, its turn (1-based; 0: not in a session) and whether the turn is its last
    session_id: str = ""
    turn: int = 0
    last_turn: bool = False

    @property
    def warm_cache(self) -> bool:
        """The server had part of this prompt's unique tail cached: a cache warm from an earlier run."""
        return self.unique_from is not None and (self.cached_tokens or 0) > self.unique_from

    @property
    def schedule_lag_s(self) -> float | None:
        """Open loop: how much later than due the request was sent, less its wait for a slot."""
        if self.scheduled_time is None or not self.start_time:
            return None
        return self.start_time - self.scheduled_time - (self.queue_s or 0.0)

    @property
    def usage(self) -> dict[str, object]:
        """The server's token counts, in the shape of OpenAI's ``usage``."""
        out: dict[str, object] = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.output_tokens}
        if self.cached_tokens is not None:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return out

    @property
    def tpot_s(self) -> float | None:
        if self.ttft_s is None or self.e2e_s is None or not self.output_tokens or self.output_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)

    @property
    def decode_tps(self) -> float | None:
        tpot = self.tpot_s
        if not tpot:
            return None
        return 1.0 / tpot


class StreamAccumulator:
    """Turns timed SSE payloads of one streaming response into a RequestRecord.

    ``start`` is the monotonic time taken just before the request was written.
    Call ``on_event(payload, t)`` for every SSE data payload, with ``t`` the
    monotonic time of the read that completed it; it returns True at ``[DONE]``.
    Then ``finish()`` once, with an error message if the transfer failed, or
    ``cancel()`` when the caller was interrupted.
    """

    __slots__ = (
        "_answer",
        "_body_at",
        "_done",
        "_error",
        "_fast_mark",
        "_first",
        "_last",
        "_reasoning_events",
        "_text_events",
        "_text_keys",
        "_texts",
        "body",
        "record",
        "start",
    )

    def __init__(
        self,
        record: RequestRecord,
        start: float,
        text_keys: tuple[bytes, ...] = CHAT_TEXT_KEYS,
        collect_text: bool = False,
        body: bool = False,
        fast_mark: bytes = TEXT_MARK,
    ):
        self.record = record
        self._texts: list[str] | None = [] if collect_text else None
        self.start = start
        self._first: float | None = None
        self._last = 0.0
        self._text_events = 0
        self._done = False
        # text to keep: every chunk parsed in full
        self._text_keys = () if collect_text else text_keys
        self._fast_mark = fast_mark
        self._error = ""
        # when the first answer (not reasoning) token arrived
        self._answer: float | None = None
        self._reasoning_events = 0
        # one JSON body answers (embeddings), not an event stream: ``on_body``
        self.body = body
        self._body_at: float | None = None

    def on_event(self, payload: bytes, t: float) -> bool:
        key = self._fast_text(payload)
        if key:
            if self._first is None and not self.record.request_id:
                self._take_id(payload)
            self._on_text(t, key in REASONING_KEYS)
            return False
        if payload == b"[DONE]":
            self._done = True
            return True
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self._fail(f"malformed JSON in stream: {payload[:80].decode('utf-8', 'replace')!r}")
            return False
        self.on_chunk(obj, t)
        return False

    def on_body(self, body: bytes, t: float) -> None:
        """A whole JSON answer (embeddings) whose last byte arrived at ``t``: its id, usage or error."""
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            self._fail(f"malformed JSON answer: {body[:80].decode('utf-8', 'replace')!r}")
            return
        if not isinstance(obj, dict) or (obj.get("error") is not None or obj.get("object") == "error"):
            error = obj.get("error", obj) if isinstance(obj, dict) else obj
            self._fail("server error: " + _error_message(error))
            return
        if isinstance(obj.get("id"), str):
            self.record.request_id = obj["id"]
        usage = obj.get("usage")
        if isinstance(usage, dict):
            _apply_usage(self.record, usage)
        self._body_at = t
        self._done = True

    def _fast_text(self, payload: bytes) -> bytes:
        """A plain text chunk, recognised without a JSON parse: the key its text is under (b"": not one).

        Only chunks that end like a JSON object and carry the endpoint's mark
        (``"finish_reason":null``, or a Responses answer delta's type) take this
        path; anything else is parsed in full by ``on_chunk``. Inside JSON strings
        quotes are escaped, so a key or a mark cannot match text.
        """
        if payload[-1:] != b"}" or self._fast_mark not in payload:
            return b""
        for key in self._text_keys:
            i = payload.find(key)
            if i >= 0 and payload[i + len(key) : i + len(key) + 1] != b'"':
                return key
        return b""

    def _on_text(self, t: float, reasoning: bool = False) -> None:
        if self._first is None:
            self._first = t
        else:
            self.record.itl_s.append(t - self._last)
        self._last = t
        self._text_events += 1
        if reasoning:
            self._reasoning_events += 1
        elif self._answer is None:
            self._answer = t

    def on_chunk(self, obj: object, t: float) -> None:
        """A parsed chunk: error frames, the id, usage, finish reason and text."""
        if not isinstance(obj, dict):
            self._fail("malformed chunk in stream: not a JSON object")
            return
        error = obj.get("error")
        if error is not None or obj.get("object") == "error":
            self._fail("server error in stream: " + _error_message(error if error is not None else obj))
            return
        rec = self.record
        kind = obj.get("type")
        if isinstance(kind, str) and kind.startswith("response."):
            self._on_response_event(kind, obj, t)
            return
        if not rec.request_id and isinstance(obj.get("id"), str):
            rec.request_id = obj["id"]
        usage = obj.get("usage")
        if isinstance(usage, dict):
            _apply_usage(rec, usage)
        choices = obj.get("choices")
        if isinstance(choices, list) and choices:
            choice = choices[0] if isinstance(choices[0], dict) else {}
            if choice.get("finish_reason"):
                rec.finish_reason = str(choice["finish_reason"])
            if _has_text(choice):
                if self._texts is not None:
                    self._texts.append(_text_of(obj))
                self._on_text(t, _is_reasoning(choice))

    def _on_response_event(self, kind: str, obj: dict[str, Any], t: float) -> None:
        """The Responses API's events: text and reasoning deltas, and the usage of ``response.completed``
        (which ends the stream: there is no [DONE])."""
        response = obj.get("response")
        if isinstance(response, dict) and isinstance(response.get("id"), str) and not self.record.request_id:
            self.record.request_id = response["id"]
        if kind in RESPONSE_TEXT_EVENTS and obj.get("delta"):
            if self._texts is not None and kind == "response.output_text.delta":
                self._texts.append(str(obj["delta"]))
            self._on_text(t, kind != "response.output_text.delta")
        elif kind == "response.completed" and isinstance(response, dict):
            usage = response.get("usage")
            if isinstance(usage, dict):
                _apply_usage(self.record, _chat_usage(usage))
            self.record.finish_reason = "stop" if response.get("status") == "completed" else str(response.get("status"))
            self._done = True
        elif kind in ("response.failed", "response.incomplete", "response.error"):
            error = (response or {}).get("error") if isinstance(response, dict) else obj.get("error")
            self._fail(f"server error in stream: {_error_message(error or kind)}")

    def _fail(self, message: str) -> None:
        if not self._error:
            self._error = message

    def _take_id(self, payload: bytes) -> None:
        """Take the response id from a text chunk without a full parse."""
        i = payload.find(b'"id":"')
        if i >= 0:
            j = payload.find(b'"', i + 6)
            if j > 0:
                self.record.request_id = payload[i + 6 : j].decode("utf-8", "replace")

    def finish(self, error: str = "") -> RequestRecord:
        """Close the record. ``error`` is a transport failure, if there was one."""
        rec = self.record
        if self._first is not None:
            rec.ttft_s = self._first - self.start
            rec.e2e_s = self._last - self.start
        # a JSON answer: no token streams back, its latency is E2E's
        if self._body_at is not None:
            rec.e2e_s = self._body_at - self.start
        if rec.output_tokens is None and self._text_events:
            rec.output_tokens = self._text_events
            rec.usage_source = "chunks"
        if self._answer is not None:
            rec.answer_ttft_s = self._answer - self.start
        if rec.reasoning_tokens is None and self._reasoning_events:
            rec.reasoning_tokens = self._reasoning_events
        message = self._error or error
        if not message and not self._done:
            message = "stream ended without [DONE]"
        if not message and self._first is None and self._body_at is None:
            message = "stream carried no tokens"
        rec.error = message
        rec.success = not message
        if self._texts is not None:
            rec.text = "".join(self._texts)
        return rec

    def cancel(self) -> RequestRecord:
        """Close the record of a request cut off from outside, keeping what it measured."""
        self.finish(CANCELLED)
        self.record.cancelled = True
        return self.record


def _has_text(choice: dict[str, Any]) -> bool:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return any(delta.get(key) for key in TEXT_FIELDS)
    return bool(choice.get("text"))


RESPONSE_TEXT_EVENTS = (
    "response.output_text.delta",
    "response.reasoning_text.delta",
    "response.reasoning_summary_text.delta",
)


def _chat_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """The Responses API's usage under chat's names (input/output tokens, their details)."""
    out: dict[str, Any] = {"prompt_tokens": usage.get("input_tokens"), "completion_tokens": usage.get("output_tokens")}
    if isinstance(usage.get("input_tokens_details"), dict):
        out["prompt_tokens_details"] = usage["input_tokens_details"]
    if isinstance(usage.get("output_tokens_details"), dict):
        out["completion_tokens_details"] = usage["output_tokens_details"]
    return out


def _is_reasoning(choice: dict[str, Any]) -> bool:
    """A text chunk whose text is reasoning only (no answer content in it)."""
    delta = choice.get("delta")
    return isinstance(delta, dict) and not delta.get("content") and any(delta.get(k) for k in REASONING_FIELDS)


def _text_of(obj: dict[str, Any]) -> str:
    """The generated text of a chunk: content (not reasoning) for chat, text for completions."""
    choices = obj.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return str(delta.get("content") or "")
    return str(choice.get("text") or "")


def _apply_usage(rec: RequestRecord, usage: dict[str, Any]) -> None:
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    if isinstance(prompt, int):
        rec.prompt_tokens = prompt
    if isinstance(completion, int):
        rec.output_tokens = completion
        rec.usage_source = "server"
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
        rec.cached_tokens = details["cached_tokens"]
    completion_details = usage.get("completion_tokens_details")
    if isinstance(completion_details, dict) and isinstance(completion_details.get("reasoning_tokens"), int):
        rec.reasoning_tokens = completion_details["reasoning_tokens"]


def _error_message(error: object) -> str:
    if isinstance(error, dict):
        message = error.get("message") or error.get("msg") or error
        code = error.get("code")
        return f"{message} (code {code})" if code is not None else str(message)
    return str(error)
