"""The emulator's answers as they stream: vLLM's chunk shapes (chat, completions), the Responses API's
events, and a whole answer at the end (no streaming)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from emulator.config import ServerConfig
    from emulator.engine import Sequence
    from emulator.http import Connection
    from emulator.metrics import Metrics


class App(Protocol):
    """What a sink reports to (server.App)."""

    cfg: ServerConfig
    metrics: Metrics

    def first_word(self) -> int:
        """Where in OUTPUT_WORDS an answer starts."""

    def finished(self, seq: Sequence, status: str) -> None: ...


OUTPUT_WORDS = [
    f" {w}".encode()
    for w in (
        "the model streams tokens at a steady pace while the batch grows and the cache keeps shared prefixes warm "
        "so that repeated requests skip most of their prefill work and answer sooner than cold ones do"
    ).split()
]


class StreamSink:
    """Formats one streaming response in vLLM's chunk shapes."""

    __slots__ = (
        "_head",
        "_post",
        "_pre",
        "_pre_reasoning",
        "_words",
        "app",
        "chat",
        "conn",
        "fault",
        "include_usage",
        "model",
        "rid",
    )

    def __init__(
        self,
        app: App,
        conn: Connection,
        rid: str,
        model: str,
        chat: bool,
        stream: bool,
        include_usage: bool,
        fault: Any,
    ) -> None:
        self.app = app
        self.conn = conn
        self.rid = rid
        self.model = model
        self.chat = chat
        self.include_usage = include_usage
        self.fault = fault
        created = int(time.time())
        obj = "chat.completion.chunk" if chat else "text_completion"
        self._head = f'{{"id":"{rid}","object":"{obj}","created":{created},"model":{json.dumps(model)},'.encode()
        if chat:
            self._pre = self._head + b'"choices":[{"index":0,"delta":{"content":"'
            self._pre_reasoning = self._head + b'"choices":[{"index":0,"delta":{"reasoning_content":"'
            self._post = b'"},"logprobs":null,"finish_reason":null}]}'
        else:
            self._pre = self._head + b'"choices":[{"index":0,"text":"'
            self._post = b'","logprobs":null,"finish_reason":null,"stop_reason":null}]}'
        self._words = app.first_word()
        conn.start_stream()

    def token_bytes(self, index: int, finish_reason: str) -> bytes:
        """The SSE bytes of token ``index`` (the role chunk before the first, as vLLM sends it)."""
        word = OUTPUT_WORDS[(self._words + index) % len(OUTPUT_WORDS)]
        reasoning = self.chat and index < self.app.cfg.reasoning_tokens
        if finish_reason:
            if self.chat:
                payload = (
                    self._head
                    + (
                        b'"choices":[{"index":0,"delta":{"reasoning_content":"'
                        if reasoning
                        else b'"choices":[{"index":0,"delta":{"content":"'
                    )
                    + word
                    + b'"},"logprobs":null,"finish_reason":"'
                    + finish_reason.encode()
                    + b'","stop_reason":null}]}'
                )
            else:
                payload = (
                    self._head
                    + b'"choices":[{"index":0,"text":"'
                    + word
                    + b'","logprobs":null,"finish_reason":"'
                    + finish_reason.encode()
                    + b'","stop_reason":null}]}'
                )
        else:
            payload = (self._pre_reasoning if reasoning else self._pre) + word + self._post
        out = b"data: " + payload + b"\n\n"
        # vLLM sends the role chunk with the first token
        if index == 0 and self.chat:
            role = (
                self._head
                + b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}'
            )
            out = b"data: " + role + b"\n\n" + out
        return out

    def tail_bytes(self, seq: Sequence) -> bytes:
        """What follows the last token: the usage chunk when asked for, and [DONE]."""
        tail = b""
        if self.include_usage:
            tail += b"data: " + self.usage_bytes(seq) + b"\n\n"
        return tail + b"data: [DONE]\n\n"

    def on_token(self, seq: Sequence, index: int, finish_reason: str) -> None:
        conn = self.conn
        if conn.closed:
            seq.cancelled = True
            return
        out = self.token_bytes(index, finish_reason)
        fault = self.fault
        if fault is not None and fault.mid_stream(self, seq, index, out):
            return
        # ground truth is the instant the token is handed to the kernel: taken just before the write,
        # so a pause of this process after the write cannot make it look later than the client saw it
        now = time.perf_counter()
        conn.send_chunk(out)
        seq.last_mono = now
        if index == 0:
            seq.first_mono = now
            seq.first_wall = time.time()
            self.app.metrics.on_first_token(now - seq.received_mono)
        if self.chat and index == self.app.cfg.reasoning_tokens:
            seq.answer_mono = now
        if finish_reason:
            self.finish(seq)

    def usage_bytes(self, seq: Sequence) -> bytes:
        usage: dict[str, Any] = {
            "prompt_tokens": len(seq.prompt),
            "total_tokens": len(seq.prompt) + seq.generated,
            "completion_tokens": seq.generated,
        }
        if self.app.cfg.include_cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": seq.cached}
        return self._head + b'"choices":[],"usage":' + json.dumps(usage, separators=(",", ":")).encode() + b"}"

    def finish(self, seq: Sequence) -> None:
        self.conn.send_chunk(self.tail_bytes(seq))
        self.conn.end_stream()
        self.app.finished(seq, "ok")

    def abort(self, seq: Sequence, status: str) -> None:
        self.app.finished(seq, status)

    def finish_without_tokens(self, seq: Sequence) -> None:
        """A stream that carries no token: only the role chunk, usage and [DONE]."""
        tail = b""
        if self.chat:
            tail += b"data: " + self._head + b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
            tail += b'"logprobs":null,"finish_reason":null}]}\n\n'
        if self.include_usage:
            tail += b"data: " + self.usage_bytes(seq) + b"\n\n"
        self.conn.send_chunk(tail + b"data: [DONE]\n\n")
        self.conn.end_stream()
        self.app.finished(seq, "fault:empty")


class ResponsesSink(StreamSink):
    """One streamed ``/v1/responses`` answer: ``response.created``, a delta event per token (reasoning ones
    first, with ``--reasoning-tokens``), then ``response.completed`` with the usage; no [DONE]."""

    __slots__ = ("_sequence",)

    def __init__(self, app: App, conn: Connection, rid: str, model: str, fault: Any) -> None:
        super().__init__(app, conn, rid, model, True, True, True, fault)
        self._sequence = 0
        conn.send_chunk(
            self._event(
                "response.created",
                {"response": {"id": rid, "object": "response", "status": "in_progress", "model": model}},
            )
        )

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        self._sequence += 1
        body = json.dumps({"type": kind, "sequence_number": self._sequence, **fields}, separators=(",", ":"))
        return f"event: {kind}\ndata: {body}\n\n".encode()

    def token_bytes(self, index: int, finish_reason: str) -> bytes:
        word = OUTPUT_WORDS[(self._words + index) % len(OUTPUT_WORDS)].decode()
        kind = (
            "response.reasoning_text.delta" if index < self.app.cfg.reasoning_tokens else "response.output_text.delta"
        )
        return self._event(kind, {"item_id": f"msg_{self.rid}", "output_index": 0, "content_index": 0, "delta": word})

    def tail_bytes(self, seq: Sequence) -> bytes:
        usage: dict[str, Any] = {
            "input_tokens": len(seq.prompt),
            "output_tokens": seq.generated,
            "total_tokens": len(seq.prompt) + seq.generated,
        }
        if self.app.cfg.include_cached_tokens:
            usage["input_tokens_details"] = {"cached_tokens": seq.cached}
        return self._event(
            "response.completed",
            {
                "response": {
                    "id": self.rid,
                    "object": "response",
                    "status": "completed",
                    "model": self.model,
                    "usage": usage,
                }
            },
        )


class FullSink:
    """A non-streaming response: everything at the end."""

    def __init__(self, app: App, conn: Connection, rid: str, model: str, chat: bool) -> None:
        self.app, self.conn, self.rid, self.model, self.chat = app, conn, rid, model, chat
        self.parts: list[bytes] = []
        self._words = app.first_word()

    def on_token(self, seq: Sequence, index: int, finish_reason: str) -> None:
        if self.conn.closed:
            seq.cancelled = True
            return
        self.parts.append(OUTPUT_WORDS[(self._words + index) % len(OUTPUT_WORDS)])
        now = time.perf_counter()
        seq.last_mono = now
        if index == 0:
            seq.first_mono, seq.first_wall = now, time.time()
            self.app.metrics.on_first_token(now - seq.received_mono)
        if not finish_reason:
            return
        text = b"".join(self.parts).decode()
        usage = {
            "prompt_tokens": len(seq.prompt),
            "total_tokens": len(seq.prompt) + seq.generated,
            "completion_tokens": seq.generated,
            "prompt_tokens_details": {"cached_tokens": seq.cached},
        }
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "finish_reason": finish_reason}
            obj = "text_completion"
        self.conn.respond_json(
            200,
            {
                "id": self.rid,
                "object": obj,
                "created": int(time.time()),
                "model": self.model,
                "choices": [choice],
                "usage": usage,
            },
        )
        self.app.finished(seq, "ok")
