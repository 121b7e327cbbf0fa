"""The emulator's HTTP/1.1 server and its OpenAI-compatible routes.

Written on asyncio protocols rather than a web framework so that one core
streams well over 50,000 chunks a second: each chunk is one pre-built byte
string and one ``transport.write``.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any

from emulator import tokenizer
from emulator.arrival import arrival
from emulator.engine import Engine, EngineConfig, Sequence
from emulator.faults import FaultPlan
from emulator.metrics import Metrics
from emulator.otlp import SpanExporter, trace_id_of

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

GENERATE_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/responses")  # served unless --runner pooling
POST_PATHS = (*GENERATE_PATHS, "/v1/embeddings", "/tokenize", "/reset_prefix_cache", "/start_profile",
              "/stop_profile")  # other methods: 405  # fmt: skip

OUTPUT_WORDS = [
    f" {w}".encode()
    for w in (
        "the model streams tokens at a steady pace while the batch grows and the cache keeps shared prefixes warm "
        "so that repeated requests skip most of their prefill work and answer sooner than cold ones do"
    ).split()
]


@dataclass
class ServerConfig:
    model: str = "emulated-llama"
    lora_modules: tuple[str, ...] = ()  # adapters served beside the base model (vLLM's --lora-modules names)
    runner: str = "auto"  # generate: no /v1/embeddings; pooling: /v1/embeddings only; auto: both
    profiler: bool = False  # --profiler-config: /start_profile and /stop_profile
    otlp_traces_endpoint: str = ""  # send each traced request's span there (OTLP/HTTP), as vLLM does
    reasoning_tokens: int = 0  # chat: each answer's first N tokens stream as reasoning_content, as a reasoning model's
    image_tokens: int = 256  # the prompt tokens an image part costs (a vision model's image encoder's output)
    api_key: str | None = None
    dev_mode: bool = True  # enables POST /reset_prefix_cache, as VLLM_SERVER_DEV_MODE=1 does
    request_log: str | None = None
    include_cached_tokens: bool = True  # vLLM's --enable-prompt-tokens-details
    tokenize: bool = True  # serve POST /tokenize
    # close a keep-alive connection idle this long, as vLLM's uvicorn does (VLLM_HTTP_TIMEOUT_KEEP_ALIVE);
    # 0: close after every response, without saying so
    timeout_keep_alive: float = 5.0
    wrong_method_status: int = 405  # another method on a POST route: 405 (FastAPI, vLLM) or 404 (Go's gin, others)


class RequestLog:
    """Ground truth: one JSON line per request, flushed as it is written."""

    def __init__(self, path: str | None) -> None:
        self._file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115

    def write(self, entry: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(entry) + "\n")
            self._file.flush()


class App:
    def __init__(self, server: ServerConfig, engine_config: EngineConfig, faults: FaultPlan) -> None:
        self.cfg = server
        self.metrics = Metrics(server.model)
        self.engine = Engine(engine_config, self.metrics)
        self.faults = faults
        self.log = RequestLog(server.request_log)
        self.created = int(time.time())
        self.received = 0  # generation requests received
        self.completed = 0
        self.idle_closed = 0  # keep-alive connections closed for idling (--timeout-keep-alive)
        self.by_path: dict[str, int] = {}
        self.profiles: list[dict[str, int]] = []  # each profile: the model requests it saw arrive
        self.spans = SpanExporter(server.otlp_traces_endpoint, server.model) if server.otlp_traces_endpoint else None
        self.profiling = False
        self._rng = random.Random(engine_config.seed + 1)

    # -- routing ---------------------------------------------------------------
    def handle(self, conn: Connection, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        path = path.split("?", 1)[0]
        if self.profiling and method == "POST" and (path in GENERATE_PATHS or path == "/v1/embeddings"):
            self.profiles[-1]["requests"] += 1
        wrong_method = path in POST_PATHS and method != "POST"  # counted apart: "GET /v1/chat/completions"
        key = f"{method} {path}" if wrong_method else path
        self.by_path[key] = self.by_path.get(key, 0) + 1
        if self.cfg.api_key and path.startswith("/v1/"):
            if headers.get("authorization") != f"Bearer {self.cfg.api_key}":
                conn.respond_json(401, {"error": "Unauthorized"})
                return
        if wrong_method and self._serves(path) and self.cfg.wrong_method_status == 404:
            conn.respond(404, b"404 page not found", "text/plain")  # as Go's gin answers
        elif wrong_method and self._serves(path):
            conn.respond_json(405, {"detail": "Method Not Allowed"})  # as vLLM (FastAPI) answers
        elif path == "/health":
            conn.respond(200, b"", "application/json")
        elif path == "/v1/models":
            conn.respond_json(200, self._models())
        elif path == "/metrics":
            cfg = self.engine.config
            cache_config = {"block_size": str(cfg.block_size), "enable_prefix_caching": str(cfg.enable_prefix_caching),
                            "num_gpu_blocks": str(cfg.num_blocks)}  # fmt: skip
            text = self.metrics.render(len(self.engine.running), len(self.engine.waiting), self.engine.kv_usage(),
                                       cache_config)  # fmt: skip
            conn.respond(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
        elif path in GENERATE_PATHS and method == "POST" and self.cfg.runner != "pooling":
            self._generate(conn, path, headers, body)
        elif path == "/v1/embeddings" and method == "POST" and self.cfg.runner != "generate":
            self._embed(conn, body)
        elif path == "/tokenize" and method == "POST" and self.cfg.tokenize:
            self._tokenize(conn, body)
        elif path in ("/start_profile", "/stop_profile") and method == "POST" and self.cfg.profiler:
            self.profiling = path == "/start_profile"
            if self.profiling:
                self.profiles.append({"requests": 0})
            conn.respond(200, b"", "application/json")
        elif path == "/reset_prefix_cache" and method == "POST" and self.cfg.dev_mode:
            self.engine.reset_prefix_cache()
            conn.respond(200, b"", "application/json")
        elif path == "/emulator/stats":
            conn.respond_json(
                200,
                {
                    "received": self.received,
                    "completed": self.completed,
                    "by_path": self.by_path,
                    "running": len(self.engine.running),
                    "waiting": len(self.engine.waiting),
                    "steps": self.engine.steps,
                    "cache_blocks": len(self.engine.cache),
                    "faults_injected": self.faults.injected,
                    "idle_closed": self.idle_closed,
                    "profiles": self.profiles,
                },
            )
        else:
            conn.respond_json(404, {"detail": "Not Found"})

    def _serves(self, path: str) -> bool:
        """The route is there (for some method): --runner pooling has no generation, generate no embeddings."""
        if path in GENERATE_PATHS:
            return self.cfg.runner != "pooling"
        if path in ("/start_profile", "/stop_profile"):
            return self.cfg.profiler
        if path == "/v1/embeddings":
            return self.cfg.runner != "generate"
        if path == "/reset_prefix_cache":
            return self.cfg.dev_mode
        return path != "/tokenize" or self.cfg.tokenize

    def _models(self) -> dict[str, Any]:
        """The base model, then each LoRA adapter with the base as its parent, as vLLM lists them."""
        base = {"id": self.cfg.model, "object": "model", "created": self.created, "owned_by": "vllm",
                "root": self.cfg.model, "parent": None, "max_model_len": self.engine.config.max_model_len}  # fmt: skip
        adapters = [{**base, "id": name, "root": f"/adapters/{name}", "parent": self.cfg.model}
                    for name in self.cfg.lora_modules]  # fmt: skip
        return {"object": "list", "data": [base, *adapters]}

    def _tokenize(self, conn: Connection, body: bytes) -> None:
        try:
            req = json.loads(body)
            if "messages" in req:
                ids = tokenizer.chat_ids(req["messages"], self.cfg.image_tokens)
            else:
                ids = tokenizer.prompt_ids(str(req["prompt"]), req.get("add_special_tokens", True))
        except (ValueError, KeyError, TypeError, AttributeError):
            conn.respond_json(400, _error("tokenize needs 'prompt' or 'messages'", 400))
            return
        conn.respond_json(
            200,
            {"count": len(ids), "max_model_len": self.engine.config.max_model_len, "tokens": ids, "token_strs": None},
        )

    def _generate(self, conn: Connection, path: str, headers: dict[str, str], body: bytes) -> None:
        received_mono, received_wall = conn.arrived_mono, conn.arrived_wall
        self.received += 1
        responses = path == "/v1/responses"
        chat = path == "/v1/chat/completions" or responses
        try:
            req = json.loads(body)
            if not isinstance(req, dict):
                raise ValueError("body is not a JSON object")
            model = req.get("model") or self.cfg.model
            max_tokens = int(req.get("max_tokens") or req.get("max_completion_tokens") or req.get("max_output_tokens")
                             or 16)  # fmt: skip
            if responses:  # a string is one user message, as the Responses API takes it
                given = req["input"]
                prompt = tokenizer.chat_ids(
                    given if isinstance(given, list) else [{"role": "user", "content": given}], self.cfg.image_tokens
                )
            else:
                prompt = (
                    tokenizer.chat_ids(req["messages"], self.cfg.image_tokens)
                    if chat
                    else tokenizer.prompt_ids(str(req["prompt"]))
                )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            conn.respond_json(400, _error(f"invalid request: {exc}", 400))
            return
        if self._refuse_unknown_model(conn, model):
            return
        limit = self.engine.config.max_model_len
        if len(prompt) + max_tokens > limit or max_tokens < 1:
            conn.respond_json(
                400,
                _error(
                    f"This model's maximum context length is {limit} tokens. However, you requested "
                    f"{len(prompt) + max_tokens} tokens ({len(prompt)} in the messages, {max_tokens} in the completion).",
                    400,
                ),
            )
            return
        fault = self.faults.pick()
        if fault and fault.before_headers(conn):
            self.log.write({"id": None, "fault": fault.kind, "received_wall": received_wall})
            return
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        stream = bool(req.get("stream"))
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        if responses and not stream:
            conn.respond_json(400, _error("the emulator streams /v1/responses only: send stream: true", 400))
            return
        sink: StreamSink | FullSink = (
            ResponsesSink(self, conn, "resp_" + uuid.uuid4().hex, model, fault)
            if responses
            else StreamSink(self, conn, rid, model, chat, stream, include_usage, fault)
            if stream
            else FullSink(self, conn, rid, model, chat)
        )
        rid = sink.rid
        seq = Sequence(
            rid,
            prompt,
            max_tokens,
            bool(req.get("ignore_eos")),
            sink,
            received_mono=received_mono,
            received_wall=received_wall,
            adapter="" if model == self.cfg.model else model,
            trace_id=trace_id_of(headers.get("traceparent", "")),
        )
        conn.active = seq
        self.engine.submit(seq)

    def _refuse_unknown_model(self, conn: Connection, model: str) -> bool:
        """A 404 as vLLM answers it, for a model (or adapter) it does not serve; True when it refused."""
        if model == self.cfg.model or model in self.cfg.lora_modules:
            return False
        conn.respond_json(404, _error(f"The model `{model}` does not exist.", 404, "NotFoundError"))
        return True

    def _embed(self, conn: Connection, body: bytes) -> None:
        """``/v1/embeddings``: each input's tokens cost what their prefill would (outside the decode batch), the
        answer one JSON body with a vector per input and the usage."""
        received_mono, received_wall = conn.arrived_mono, conn.arrived_wall
        try:
            req = json.loads(body)
            model = req.get("model") or self.cfg.model
            inputs = req["input"] if isinstance(req["input"], list) else [req["input"]]
            tokens = sum(len(tokenizer.prompt_ids(str(text))) for text in inputs)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            conn.respond_json(400, _error(f"invalid request: {exc}", 400))
            return
        if self._refuse_unknown_model(conn, model):
            return
        cfg = self.engine.config
        rid = "embd-" + uuid.uuid4().hex

        def answer() -> None:
            data = [{"object": "embedding", "index": i, "embedding": [round(0.01 * ((i + k) % 7), 2) for k in range(64)]}
                    for i in range(len(inputs))]  # fmt: skip
            now = time.perf_counter()
            conn.respond_json(200, {"id": rid, "object": "list", "created": int(time.time()), "model": model,
                                    "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})  # fmt: skip
            self.log.write({"id": rid, "model": model, "status": "ok", "received_wall": received_wall,
                            "e2e_s": now - received_mono, "prompt_tokens": tokens, "output_tokens": 0})  # fmt: skip

        delay = (cfg.step_ms + cfg.prefill_ms_per_token * tokens) / 1000.0
        asyncio.get_running_loop().call_later(max(0.0, delay - (time.perf_counter() - received_mono)), answer)

    def finished(self, seq: Sequence, status: str) -> None:
        self.completed += 1
        timings = _timings(seq)
        if self.spans is not None and seq.trace_id:
            now_wall = time.time()
            self.spans.add(seq.trace_id, seq.received_wall, now_wall, timings)
        self.log.write(
            {
                "id": seq.request_id,
                "trace_id": seq.trace_id or None,
                "spans": timings,
                "model": seq.adapter or self.cfg.model,
                "status": status,
                "received_wall": seq.received_wall,
                "first_token_wall": seq.first_wall or None,
                "ttft_s": (seq.first_mono - seq.received_mono) if seq.first_mono else None,
                "answer_ttft_s": (seq.answer_mono - seq.received_mono) if seq.answer_mono else None,
                "queue_s": (seq.admitted_mono - seq.received_mono) if seq.admitted_mono else None,
                "e2e_s": (seq.last_mono - seq.received_mono) if seq.last_mono else None,
                "prompt_tokens": len(seq.prompt),
                "cached_tokens": seq.cached,
                "output_tokens": seq.generated,
                "finish_reason": seq.finish_reason,
            }
        )


def _timings(seq: Sequence) -> dict[str, float]:
    """A finished request's timings under vLLM's span attribute names (seconds), from its own clock."""
    out = {}
    if seq.admitted_mono:
        out["gen_ai.latency.time_in_queue"] = seq.admitted_mono - seq.received_mono
        if seq.first_mono:
            out["gen_ai.latency.time_in_model_prefill"] = seq.first_mono - seq.admitted_mono
    if seq.first_mono:
        out["gen_ai.latency.time_to_first_token"] = seq.first_mono - seq.received_mono
    if seq.last_mono:
        out["gen_ai.latency.e2e"] = seq.last_mono - seq.received_mono
    return out


def _error(message: str, code: int, kind: str = "BadRequestError") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


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
        self._words = app._rng.randrange(len(OUTPUT_WORDS))
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
        if index == 0 and self.chat:  # vLLM sends the role chunk with the first token
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
        conn.send_chunk(self._event("response.created", {"response": {"id": rid, "object": "response",
                                                                      "status": "in_progress", "model": model}}))  # fmt: skip

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        self._sequence += 1
        body = json.dumps({"type": kind, "sequence_number": self._sequence, **fields}, separators=(",", ":"))
        return f"event: {kind}\ndata: {body}\n\n".encode()

    def token_bytes(self, index: int, finish_reason: str) -> bytes:
        word = OUTPUT_WORDS[(self._words + index) % len(OUTPUT_WORDS)].decode()
        kind = ("response.reasoning_text.delta" if index < self.app.cfg.reasoning_tokens
                else "response.output_text.delta")  # fmt: skip
        return self._event(kind, {"item_id": f"msg_{self.rid}", "output_index": 0, "content_index": 0, "delta": word})

    def tail_bytes(self, seq: Sequence) -> bytes:
        usage: dict[str, Any] = {"input_tokens": len(seq.prompt), "output_tokens": seq.generated,
                                 "total_tokens": len(seq.prompt) + seq.generated}  # fmt: skip
        if self.app.cfg.include_cached_tokens:
            usage["input_tokens_details"] = {"cached_tokens": seq.cached}
        return self._event("response.completed", {"response": {"id": self.rid, "object": "response",
                                                                "status": "completed", "model": self.model,
                                                                "usage": usage}})  # fmt: skip


class FullSink:
    """A non-streaming response: everything at the end."""

    def __init__(self, app: App, conn: Connection, rid: str, model: str, chat: bool) -> None:
        self.app, self.conn, self.rid, self.model, self.chat = app, conn, rid, model, chat
        self.parts: list[bytes] = []
        self._words = app._rng.randrange(len(OUTPUT_WORDS))

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


class Connection(asyncio.Protocol):
    """One client connection: parses requests, one at a time, and writes responses."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.busy = False
        self.closed = False
        self.active: Sequence | None = None
        self.keep_alive = True
        self._sock: object = None
        self.arrived_mono = 0.0  # when the bytes of the last read reached the socket (see arrival.py)
        self.arrived_wall = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        self._sock = getattr(sock, "_sock", sock)  # asyncio wraps it; the stamp is on the socket itself
        self._idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._busy()
        if self.active is not None:
            self.active.cancelled = True

    def _idle(self) -> None:
        """No request in progress: close the connection if none comes within the keep-alive timeout."""
        self._busy()
        timeout = self.app.cfg.timeout_keep_alive
        if timeout > 0:
            self._idle_timer = asyncio.get_running_loop().call_later(timeout, self._close_idle)

    def _busy(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _close_idle(self) -> None:
        self._idle_timer = None
        if not self.busy and not self.closed and self.transport is not None:
            self.app.idle_closed += 1
            self.transport.close()
            self.closed = True

    def data_received(self, data: bytes) -> None:
        self._busy()
        self.arrived_mono, self.arrived_wall = arrival(self._sock)
        self.buf += data
        self._parse()

    def _parse(self) -> None:
        while not self.busy and not self.closed:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.respond_json(413, {"detail": "headers too large"}, close=True)
                return
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                self.respond_json(400, {"detail": "bad request line"}, close=True)
                return
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length") or 0)
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            self.keep_alive = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
            self.busy = True
            self.app.handle(self, method, target, headers, body)

    # -- responses ---------------------------------------------------------------
    def respond(self, status: int, body: bytes, content_type: str, close: bool = False) -> None:
        if self.closed:
            return
        keep = self.keep_alive and not close
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\ncontent-type: {content_type}\r\n"
            f"content-length: {len(body)}\r\n{'' if keep else 'connection: close' + chr(13) + chr(10)}\r\n"
        )
        self.transport.write(head.encode() + body)
        self._done(keep)

    def respond_json(self, status: int, obj: Any, close: bool = False) -> None:
        self.respond(status, json.dumps(obj).encode(), "application/json", close)

    def start_stream(self) -> None:
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n"
        )

    def send_chunk(self, payload: bytes) -> None:
        if not self.closed:
            self.transport.write(b"%x\r\n%b\r\n" % (len(payload), payload))

    def end_stream(self) -> None:
        if not self.closed:
            self.transport.write(b"0\r\n\r\n")
        self._done(self.keep_alive)

    def abort(self, reset: bool = False) -> None:
        """Drop the connection at once; with ``reset`` the peer gets a TCP RST (fault injection)."""
        if self.transport is not None:
            sock = self.transport.get_extra_info("socket")
            if reset and sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()
        self.closed = True

    def _done(self, keep: bool) -> None:
        self.active = None
        self.busy = False
        if not keep or self.app.cfg.timeout_keep_alive <= 0:
            self.transport.close()
            self.closed = True
            return
        if self.buf:
            self._parse()
        if not self.busy and not self.closed:
            self._idle()
