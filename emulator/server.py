"""The emulator's application: its routes (one table, ``ROUTES``) and what each answers.

The connections (http.py) hand each parsed request to ``App.handle``; generation requests become engine
sequences (engine.py) whose tokens stream through a sink (sinks.py).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emulator import tokenizer
from emulator.config import EngineConfig, ServerConfig
from emulator.engine import Engine, Sequence
from emulator.faults import FaultPlan
from emulator.metrics import Metrics
from emulator.otlp import SpanExporter, trace_id_of
from emulator.sinks import OUTPUT_WORDS, FullSink, ResponsesSink, StreamSink

if TYPE_CHECKING:
    from emulator.http import Connection

Handler = Callable[["App", "Connection", str, dict[str, str], bytes], None]


@dataclass(frozen=True)
class Route:
    """A route: the method it takes (None: any), its handler, and whether the configuration serves it
    (a route not served answers 404 for every method)."""

    method: str | None
    handler: Handler
    served: Callable[[ServerConfig], bool] = lambda cfg: True
    # a model request: counted in a profile (--profiler-config)
    model_request: bool = False


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
        # generation requests received
        self.received = 0
        self.completed = 0
        # keep-alive connections closed for idling (--timeout-keep-alive)
        self.idle_closed = 0
        self.by_path: dict[str, int] = {}
        # each profile: the model requests it saw arrive
        self.profiles: list[dict[str, int]] = []
        self.spans = SpanExporter(server.otlp_traces_endpoint, server.model) if server.otlp_traces_endpoint else None
        self.profiling = False
        self._rng = random.Random(engine_config.seed + 1)

    @property
    def keep_alive_s(self) -> float:
        return self.cfg.timeout_keep_alive

    def closed_idle(self) -> None:
        self.idle_closed += 1

    def first_word(self) -> int:
        return self._rng.randrange(len(OUTPUT_WORDS))

    def handle(self, conn: Connection, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        """Answer one request (``ROUTES``); a method the route does not take gets --wrong-method-status."""
        path = path.split("?", 1)[0]
        route = ROUTES.get(path)
        wrong_method = route is not None and route.method is not None and method != route.method
        if self.profiling and route is not None and route.model_request and not wrong_method:
            self.profiles[-1]["requests"] += 1
        # counted apart: "GET /v1/chat/completions"
        key = f"{method} {path}" if wrong_method else path
        self.by_path[key] = self.by_path.get(key, 0) + 1
        if self.cfg.api_key and path.startswith("/v1/"):
            if headers.get("authorization") != f"Bearer {self.cfg.api_key}":
                conn.respond_json(401, {"error": "Unauthorized"})
                return
        if route is None or not route.served(self.cfg):
            conn.respond_json(404, {"detail": "Not Found"})
        elif wrong_method and self.cfg.wrong_method_status == 404:
            # as Go's gin answers
            conn.respond(404, b"404 page not found", "text/plain")
        elif wrong_method:
            # as vLLM (FastAPI) answers
            conn.respond_json(405, {"detail": "Method Not Allowed"})
        else:
            route.handler(self, conn, path, headers, body)

    def _tokenize(self, conn: Connection, path: str, headers: dict[str, str], body: bytes) -> None:
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
        """A chat, completion or Responses request: checked, then a sequence in the engine."""
        received_mono, received_wall = conn.arrived_mono, conn.arrived_wall
        self.received += 1
        responses = path == "/v1/responses"
        chat = path == "/v1/chat/completions" or responses
        try:
            req, prompt, max_tokens = _generation_request(path, body, self.cfg.image_tokens)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            conn.respond_json(400, _error(f"invalid request: {exc}", 400))
            return
        model = req.get("model") or self.cfg.model
        if self._refuse_unknown_model(conn, model) or self._refuse_too_long(conn, len(prompt), max_tokens):
            return
        stream = bool(req.get("stream"))
        if responses and not stream:
            conn.respond_json(400, _error("the emulator streams /v1/responses only: send stream: true", 400))
            return
        fault = self.faults.pick()
        if fault and fault.before_headers(conn):
            self.log.write({"id": None, "fault": fault.kind, "received_wall": received_wall})
            return
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        sink: StreamSink | FullSink
        if responses:
            sink = ResponsesSink(self, conn, "resp_" + uuid.uuid4().hex, model, fault)
        elif stream:
            include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
            sink = StreamSink(self, conn, rid, model, chat, stream, include_usage, fault)
        else:
            sink = FullSink(self, conn, rid, model, chat)
        seq = Sequence(
            sink.rid,
            prompt,
            max_tokens,
            bool(req.get("ignore_eos")),
            sink,
            received_mono=received_mono,
            received_wall=received_wall,
            adapter="" if model == self.cfg.model else model,
            trace_id=trace_id_of(headers.get("traceparent", "")),
            session=headers.get(self.cfg.session_header.lower(), ""),
        )
        conn.active = seq
        self.engine.submit(seq)

    def _refuse_too_long(self, conn: Connection, prompt: int, max_tokens: int) -> bool:
        """A 400 as vLLM answers it, for a prompt and max_tokens beyond --max-model-len; True when it refused."""
        limit = self.engine.config.max_model_len
        if prompt + max_tokens <= limit and max_tokens >= 1:
            return False
        message = (
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{prompt + max_tokens} tokens ({prompt} in the messages, {max_tokens} in the completion)."
        )
        conn.respond_json(400, _error(message, 400))
        return True

    def _refuse_unknown_model(self, conn: Connection, model: str) -> bool:
        """A 404 as vLLM answers it, for a model (or adapter) it does not serve; True when it refused."""
        if model == self.cfg.model or model in self.cfg.lora_modules:
            return False
        conn.respond_json(404, _error(f"The model `{model}` does not exist.", 404, "NotFoundError"))
        return True

    def _embed(self, conn: Connection, path: str, headers: dict[str, str], body: bytes) -> None:
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
            data = [
                {"object": "embedding", "index": i, "embedding": [round(0.01 * ((i + k) % 7), 2) for k in range(64)]}
                for i in range(len(inputs))
            ]
            now = time.perf_counter()
            conn.respond_json(
                200,
                {
                    "id": rid,
                    "object": "list",
                    "created": int(time.time()),
                    "model": model,
                    "data": data,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                },
            )
            self.log.write(
                {
                    "id": rid,
                    "model": model,
                    "status": "ok",
                    "received_wall": received_wall,
                    "e2e_s": now - received_mono,
                    "prompt_tokens": tokens,
                    "output_tokens": 0,
                }
            )

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
                "session": seq.session or None,
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


def _generation_request(path: str, body: bytes, image_tokens: int) -> tuple[dict[str, Any], list[int], int]:
    """A generation request's JSON, its prompt's tokens (the chat template's for messages) and its
    max_tokens; raises ValueError, KeyError, TypeError or AttributeError for a malformed one."""
    req = json.loads(body)
    if not isinstance(req, dict):
        raise ValueError("body is not a JSON object")
    max_tokens = int(req.get("max_tokens") or req.get("max_completion_tokens") or req.get("max_output_tokens") or 16)
    if path == "/v1/responses":
        # a string is one user message, as the Responses API takes it
        given = req["input"]
        messages = given if isinstance(given, list) else [{"role": "user", "content": given}]
        return req, tokenizer.chat_ids(messages, image_tokens), max_tokens
    if path == "/v1/chat/completions":
        return req, tokenizer.chat_ids(req["messages"], image_tokens), max_tokens
    return req, tokenizer.prompt_ids(str(req["prompt"])), max_tokens


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


def health(app: App, conn: Connection, path: str, headers: dict[str, str], body: bytes) -> None:
    conn.respond(200, b"", "application/json")


def list_models(app: App, conn: Connection, path: str, headers: dict[str, str], body: bytes) -> None:
    conn.respond_json(200, models(app))


def metrics(app: App, conn: Connection, path: str, headers: dict[str, str], body: bytes) -> None:
    cfg = app.engine.config
    cache_config = {
        "block_size": str(cfg.block_size),
        "enable_prefix_caching": str(cfg.enable_prefix_caching),
        "num_gpu_blocks": str(cfg.num_blocks),
    }
    engine = app.engine
    text = app.metrics.render(len(engine.running), len(engine.waiting), engine.kv_usage(), cache_config)
    conn.respond(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")


def profile(app: App, conn: Connection, path: str, headers: dict[str, str], body: bytes) -> None:
    app.profiling = path == "/start_profile"
    if app.profiling:
        app.profiles.append({"requests": 0})
    conn.respond(200, b"", "application/json")


def reset_prefix_cache(app: App, conn: Connection, path: str, headers: dict[str, str], body: bytes) -> None:
    app.engine.reset_prefix_cache()
    conn.respond(200, b"", "application/json")


def stats(app: App, conn: Connection, path: str, headers: dict[str, str], body: bytes) -> None:
    """``/emulator/stats``: the emulator's own counts, for tests."""
    stats = {
        "received": app.received,
        "completed": app.completed,
        "by_path": app.by_path,
        "running": len(app.engine.running),
        "waiting": len(app.engine.waiting),
        "steps": app.engine.steps,
        "cache_blocks": len(app.engine.cache),
        "faults_injected": app.faults.injected,
        "idle_closed": app.idle_closed,
        "profiles": app.profiles,
    }
    conn.respond_json(200, stats)


def models(app: App) -> dict[str, Any]:
    """The base model, then each LoRA adapter with the base as its parent, as vLLM lists them."""
    base = {
        "id": app.cfg.model,
        "object": "model",
        "created": app.created,
        "owned_by": "vllm",
        "root": app.cfg.model,
        "parent": None,
        "max_model_len": app.engine.config.max_model_len,
    }
    adapters = [
        {**base, "id": name, "root": f"/adapters/{name}", "parent": app.cfg.model} for name in app.cfg.lora_modules
    ]
    return {"object": "list", "data": [base, *adapters]}


def _generates(cfg: ServerConfig) -> bool:
    return cfg.runner != "pooling"


ROUTES: dict[str, Route] = {
    "/health": Route(None, health),
    "/v1/models": Route(None, list_models),
    "/metrics": Route(None, metrics),
    "/emulator/stats": Route(None, stats),
    "/v1/chat/completions": Route("POST", App._generate, _generates, model_request=True),
    "/v1/completions": Route("POST", App._generate, _generates, model_request=True),
    "/v1/responses": Route("POST", App._generate, _generates, model_request=True),
    "/v1/embeddings": Route("POST", App._embed, lambda cfg: cfg.runner != "generate", model_request=True),
    "/tokenize": Route("POST", App._tokenize, lambda cfg: cfg.tokenize),
    "/start_profile": Route("POST", profile, lambda cfg: cfg.profiler),
    "/stop_profile": Route("POST", profile, lambda cfg: cfg.profiler),
    "/reset_prefix_cache": Route("POST", reset_prefix_cache, lambda cfg: cfg.dev_mode),
}
