"""The suite's options in sections, each option declared once as a field of its section.

A section is a frozen dataclass whose fields are options (``option.option``): its docstring is the
title of its group in ``--help``, its fields' order the order there. ``Settings`` (settings.py) holds one
of each, checked and typed; each part of the run takes the sections it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType

from prompts.images import FORMATS as IMAGE_FORMATS
from prompts.images import parse_size
from prompts.sessions import SessionShape
from reports.checks import check_error
from reports.intervals import ci_level_error
from scheduler.arrivals import Stage, format_stages, parse_stages
from scheduler.levels import SweepSpec, parse_sweep
from scheduler.slo import format_slo, goodput_as_slo, parse_slo
from scheduler.spread import Spread, parse_think, parse_tool_time, parse_turns
from scheduler.trace import FORMATS as TRACE_FORMATS
from users.settings.hosts import STRATEGIES as HOST_STRATEGIES
from users.settings.model_mix import ModelMix
from users.settings.option import (
    Option,
    at_least,
    between_0_and_1,
    existing_file,
    metrics_urls,
    option,
    options_of,
    parsed_by,
    positive,
    spread_option,
    telemetry_urls,
)

ENDPOINT_CHOICES = ("chat", "completions", "embeddings", "responses")
ENDPOINT_PATHS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    # vllm bench serve's --endpoint
    "/v1/responses": "responses",
}
# no --slo
NO_SLO: Mapping[str, float] = MappingProxyType({})


def slo_of(text: str) -> Mapping[str, float]:
    """``--slo``'s limits (read-only: a section is frozen)."""
    return MappingProxyType(parse_slo(text))


@dataclass(frozen=True)
class LoadOptions:
    """LLM load: how requests are sent"""

    num_requests: int | None = option(
        "int",
        ("-n", "--num-requests", "--num-prompts"),
        None,
        "Total requests in the run: stop issuing at N, let in-flight ones finish, then stop",
        check=positive("requests"),
    )
    request_rate: float | None = option(
        "float",
        ("--request-rate",),
        None,
        "Open loop: requests per second for the whole run (all processes and workers), sent when due "
        "whatever earlier requests do; -u then only keeps Locust's users alive (no throttling)",
        check=positive(),
    )
    burstiness: float = option(
        "float",
        ("--burstiness",),
        1.0,
        "Open loop: gamma shape of the gaps between arrivals (1: Poisson; <1 burstier; >1 smoother; inf: even)",
        check=positive(),
    )
    max_concurrency: int | None = option(
        "int",
        ("--max-concurrency",),
        None,
        "Open loop: at most this many requests in flight (split among processes); a request waits for a "
        "free slot, and the wait is its queue_s (default: no cap); with --session-rate it caps sessions",
        check=at_least(1),
    )
    session_rate: float | None = option(
        "float",
        ("--session-rate",),
        None,
        "Open loop of sessions: sessions per second for the whole run (--burstiness shapes the gaps), each "
        "running its turns on its own",
        check=positive(),
    )
    sessions: int | None = option(
        "int",
        ("--sessions",),
        None,
        "Sessions in the run: stop starting sessions at N, let those started finish, then stop (-n counts "
        "requests instead)",
        check=positive("sessions"),
    )
    session_header: str = option(
        "str",
        ("--session-header",),
        "",
        "Sessions: send each session's id in this header (routers route by it, e.g. x-session-id)",
    )
    ramp_up: str = option(
        "str",
        ("--ramp-up", "--ramp-up-strategy"),
        "",
        "Open loop: the rate climbs over the run's -n requests from --ramp-up-start to --ramp-up-end",
        choices=("", "linear", "exponential"),
    )
    ramp_up_start: float | None = option(
        "float",
        ("--ramp-up-start", "--ramp-up-start-rps"),
        None,
        "Open loop: the rate of the first request (req/s)",
        check=at_least(0),
    )
    ramp_up_end: float | None = option(
        "float",
        ("--ramp-up-end", "--ramp-up-end-rps"),
        None,
        "Open loop: the rate of the last request (req/s)",
        check=positive(),
    )
    stages: tuple[Stage, ...] = option(
        "str",
        ("--stages",),
        "",
        "Load in stages: DURATION:RATE,... (open loop, e.g. 30s:5,2m:20) or DURATION:USERSu,... (a closed loop "
        "in steps, e.g. 30s:8u,1m:32u); each row carries its stage number",
        parse=parse_stages,
        empty=(),
        show=format_stages,
    )
    sweep: SweepSpec | None = option(
        "str",
        ("--sweep",),
        "",
        "Levels in one run: rate:R1,R2,... (open loop), concurrency:C1,C2,... (closed loop), "
        "prefix-groups:G1,G2,... or prefix-tokens:P1,P2,... (the prompts' sharing; at --max-concurrency or "
        "--request-rate), or auto (synchronous, throughput, then rates between); each row carries its level",
        parse=parse_sweep,
        show=str,
    )
    level_duration: float | None = option(
        "float",
        ("--level-duration",),
        None,
        "Sweep and capacity search: seconds of sending at each level",
        check=positive(),
    )
    level_requests: int | None = option(
        "int",
        ("--level-requests",),
        None,
        "Sweep and capacity search: requests at each level (with --level-duration: whichever ends first)",
        check=at_least(1),
    )
    find_capacity: bool = option(
        "flag",
        ("--find-capacity",),
        False,
        "Search for the highest request rate that meets --slo at --slo-attainment (levels of one run)",
    )
    repeat: int = option(
        "int",
        ("--repeat",),
        1,
        "Run the workload (each level of a --sweep) K times in this run, the prefix cache reset (else warmed "
        "up equally) before each; levels interleaved; the summary's intervals come from the repetitions",
        check=at_least(1),
    )
    trace: str = option(
        "str",
        ("--trace",),
        "",
        "Replay a trace: each request sent at its timestamp with exactly its input and output lengths "
        "(Mooncake JSONL with hash_ids, an Azure-style CSV, or a PREFIX_requests.csv); -n and -t cut it",
        check=existing_file(),
    )
    trace_speed: float = option(
        "float",
        ("--trace-speed",),
        1.0,
        "Replay the trace this many times faster (0.5: at half speed)",
        check=positive(),
    )
    trace_block_tokens: int = option(
        "int",
        ("--trace-block-tokens",),
        512,
        "Tokens per hash id of the trace (Mooncake: 512); equal ids are identical blocks",
        check=at_least(1),
    )
    trace_format: str = option(
        "str",
        ("--trace-format",),
        "",
        "mooncake, azure or requests (default: guessed from the file)",
        choices=("", *TRACE_FORMATS),
    )
    max_fail_ratio: float | None = option(
        "float",
        ("--max-fail-ratio",),
        None,
        "Stop the run early once the share of failed requests exceeds this (0-1), after 20 requests",
        check=between_0_and_1(),
    )
    seed: int = option("int", ("--seed",), 0, "Seed for the prompt sets and arrival schedules, so runs are repeatable")


@dataclass(frozen=True)
class PromptOptions:
    """LLM prompts: what each request asks"""

    max_tokens: int = option(
        "int", ("--max-tokens", "--random-output-len"), 512, "max_tokens of each request", check=at_least(1)
    )
    input_tokens: int = option(
        "int", ("--input-tokens", "--random-input-len"), 2048, "Target prompt length in tokens", check=at_least(1)
    )
    input_tokens_stddev: float = option(
        "float",
        ("--input-tokens-stddev",),
        0.0,
        "Spread (standard deviation) of prompt lengths around --input-tokens",
        check=at_least(0),
    )
    ignore_eos: bool = option(
        "flag", ("--ignore-eos",), False, "Ask vLLM to ignore EOS so every request generates --max-tokens tokens"
    )
    temperature: float | None = option(
        "float", ("--temperature",), None, "Sampling temperature (default: the server's)"
    )
    prefix_tokens: int = option(
        "int",
        ("--prefix-tokens", "--random-prefix-len"),
        0,
        "Tokens of shared prefix at the start of every prompt (0: no sharing)",
        check=at_least(0),
    )
    prefix_groups: int = option(
        "int", ("--prefix-groups",), 1, "How many distinct shared prefixes; each request picks one", check=at_least(1)
    )
    dataset: str = option(
        "str",
        ("--dataset",),
        "",
        "JSONL (or JSON array) of prompts or ShareGPT conversations, instead of synthetic prompts",
        check=existing_file(),
    )
    turns: Spread = spread_option(
        ("--turns",),
        "1",
        "Sessions: turns per session, K or uniform:LO,HI; each turn re-sends the whole history (the first turn "
        "is one of the run's prompts, its shared prefix the system prompt every session shares)",
        parse_turns,
    )
    turn_tokens: int = option(
        "int", ("--turn-tokens",), 128, "Sessions: tokens of each follow-up user message", check=at_least(1)
    )
    think_time: Spread = spread_option(
        ("--think-time",),
        "0",
        "Sessions: seconds from the end of an answer to the user's next turn: S, exp:MEAN or uniform:LO,HI",
        parse_think,
    )
    tool_turns: float = option(
        "float",
        ("--tool-turns",),
        0.0,
        "Sessions: the share of follow-up turns that are a tool's result (an agent's step) instead of a user message",
        check=between_0_and_1(),
    )
    tool_tokens: int = option("int", ("--tool-tokens",), 256, "Sessions: tokens of each tool result", check=at_least(1))
    tool_time: Spread = spread_option(
        ("--tool-time",),
        "0.5",
        "Sessions: seconds a tool runs before its result is sent (as --think-time)",
        parse_tool_time,
    )
    session_file: str = option(
        "str",
        ("--session-file",),
        "",
        "Sessions replayed from a JSONL file: per line a session_id and its turns (kind user|tool, "
        "input_tokens, output_tokens, gap_s), or a ShareGPT conversation",
        check=existing_file(),
    )
    session_time_scale: float = option(
        "float",
        ("--session-time-scale",),
        1.0,
        "Sessions from --session-file: their gaps multiplied by this (0.1: ten times faster)",
        check=at_least(0),
    )
    kv_block_size: int = option(
        "int",
        ("--kv-block-size",),
        16,
        "Sessions: the server's KV-cache block size (vLLM's --block-size): a history's ideal cached tokens "
        "are its whole blocks",
        check=at_least(1),
    )
    tokenizer: str = option(
        "str",
        ("--tokenizer",),
        "",
        "The served model's tokenizer (local folder or HF cache) to size prompts (default: server /tokenize)",
    )
    warmup: int = option(
        "int",
        ("--warmup",),
        0,
        "Unmeasured requests per prefix group sent before measuring, to prime the prefix cache",
        check=at_least(0),
    )
    images: int = option(
        "int",
        ("--images",),
        0,
        "Attach N synthetic images to each chat or responses request, before its text (their tokens are the "
        "server's, on top of --input-tokens)",
        check=at_least(0),
    )
    image_size: str = option(
        "str", ("--image-size",), "512x512", "WIDTHxHEIGHT of each --images image", check=parsed_by(parse_size)
    )
    image_format: str = option(
        "str", ("--image-format",), "jpeg", "png or jpeg (a data URL in the request)", choices=IMAGE_FORMATS
    )
    image_share: bool = option(
        "flag",
        ("--image-share",),
        False,
        "The same --images in every request (the server's multimodal and prefix caches can help), not new "
        "ones each (distinct images cost the client CPU: about 25 ms per 512x512 jpeg)",
    )
    embed_batch: int = option(
        "int",
        ("--embed-batch",),
        1,
        "--endpoint embeddings: the prompts each request embeds (its input list; -n counts requests)",
        check=at_least(1),
    )

    @property
    def in_sessions(self) -> bool:
        """Requests come in sessions of more than one turn (``--turns``, ``--session-file``)."""
        return self.turns.most > 1 or bool(self.session_file)

    @property
    def session_shape(self) -> SessionShape:
        """The options' sessions (a session file's set their own turns)."""
        return SessionShape(
            self.turns, self.think_time, self.turn_tokens, self.tool_turns, self.tool_tokens, self.tool_time
        )


@dataclass(frozen=True)
class ServerOptions:
    """LLM server: where requests go"""

    model: str = option(
        "str",
        ("--model",),
        "",
        "Model to request, or several by weight: NAME[:WEIGHT],… (LoRA adapters as vLLM serves them, each "
        "request's model in proportion; default: the first model listed by GET /v1/models)",
        check=parsed_by(ModelMix.parse),
    )
    endpoint: str = option(
        "str",
        ("--endpoint",),
        "chat",
        "chat: /v1/chat/completions; completions: /v1/completions; responses: /v1/responses (streamed, "
        "measured as chat); embeddings: /v1/embeddings (one JSON answer: its latency is E2E, no token streams back) "
        "(either path is taken too, as vllm bench serve writes it)",
        choices=ENDPOINT_CHOICES,
        aliases=ENDPOINT_PATHS,
    )
    api_key: str | None = option(
        "str",
        ("--api-key",),
        None,
        "Bearer token for the server (default: $OPENAI_API_KEY); never written anywhere",
        env="OPENAI_API_KEY",
        secret=True,
    )
    stream_timeout: float = option(
        "float",
        ("--stream-timeout",),
        600.0,
        "Fail a request when no byte arrives for this many seconds",
        check=positive(),
    )
    request_timeout: float | None = option(
        "float",
        ("--request-timeout",),
        None,
        "Fail a request that takes longer than this many seconds in total",
        check=positive(),
    )
    ca_bundle: str = option(
        "str", ("--ca-bundle",), "", "CA certificates (PEM) to verify an https server with", check=existing_file()
    )
    insecure: bool = option("flag", ("--insecure",), False, "Do not verify the https server's certificate")
    reset_prefix_cache: bool = option(
        "flag",
        ("--reset-prefix-cache",),
        False,
        "POST /reset_prefix_cache before the run (vLLM needs VLLM_SERVER_DEV_MODE=1)",
    )
    host_strategy: str = option(
        "str",
        ("--host-strategy",),
        "round-robin",
        "With several hosts in -H (comma-separated replicas): round-robin, least-inflight (the host with the "
        "fewest of this process's requests in flight), or session (each session's turns on one host)",
        choices=HOST_STRATEGIES,
    )
    metrics_url: tuple[str, ...] = option(
        "list",
        ("--metrics-url",),
        (),
        "A replica's /metrics to scrape (repeat it, or comma-separate, for several; default: each host of -H); "
        "each is reported apart, with the skew between them",
        check=metrics_urls,
        web_form=False,
    )
    metrics_interval: float = option(
        "float",
        ("--metrics-interval",),
        5.0,
        "Seconds between scrapes of the server's /metrics (0: do not scrape)",
        check=at_least(0),
    )

    @cached_property
    def model_mix(self) -> ModelMix | None:
        """``--model``'s names and weights (None: the server's first model), parsed once."""
        return ModelMix.parse(self.model)


@dataclass(frozen=True)
class MeasurementOptions:
    """LLM measurement: SLOs, intervals, the client's floor"""

    slo: Mapping[str, float] = option(
        "str",
        ("--slo",),
        "",
        "Service-level objectives, milliseconds: ttft_ms=500,tpot_ms=50,e2el_ms=10000 (goodput, attainment)",
        parse=slo_of,
        empty=NO_SLO,
        show=format_slo,
    )
    goodput: tuple[str, ...] = option(
        "words",
        ("--goodput",),
        (),
        "vllm bench serve's spelling of --slo: KEY:MS ... (ttft:500 tpot:50 e2el:10000); give one of the two",
        check=parsed_by(goodput_as_slo),
    )
    slo_attainment: float = option(
        "float",
        ("--slo-attainment",),
        0.99,
        "The share of requests that must meet every --slo for a level to pass",
        check=lambda v, _name: None if 0 < v <= 1 else f"--slo-attainment must be above 0 and at most 1, got {v:g}",
    )
    ci_level: float = option(
        "float",
        ("--ci-level",),
        0.95,
        "Confidence level of the summary's intervals (<key>_ci = [low, high]; also python -m reports --ci-level)",
        check=lambda v, _name: ci_level_error(v),
    )
    calibrate: bool = option(
        "flag",
        ("--calibrate",),
        False,
        "Before the run, measure the client's own floor on this machine (TTFT/ITL error, chunks per CPU "
        "second) at the run's concurrency and sizes against a zero-latency emulator (about 10 s)",
        web_form=False,
    )
    no_kernel_timestamps: bool = option(
        "flag",
        ("--no-kernel-timestamps",),
        False,
        "Date each read when the client gets to it, not by the kernel's arrival time (Linux), to compare",
    )
    trace_context: bool = option(
        "flag",
        ("--trace-context",),
        False,
        "Send a W3C traceparent header with each request (its trace id in the trace_id column), so a "
        "server that traces requests (vLLM --otlp-traces-endpoint) can be joined to the rows",
    )
    otlp_port: int | None = option(
        "int",
        ("--otlp-port",),
        None,
        "Receive the server's OTLP spans (HTTP/protobuf, POST /v1/traces) on this port during the run and "
        "join each request's gen_ai.latency.* timings to its row by trace id; implies --trace-context",
        check=at_least(1),
        web_form=False,
    )
    profile: bool = option(
        "flag",
        ("--profile",),
        False,
        "Run the server's profiler over the measured part: POST /start_profile after the warm-up, "
        "/stop_profile at the end (vLLM needs --profiler-config)",
        web_form=False,
    )
    profile_level: int | None = option(
        "int",
        ("--profile-level",),
        None,
        "With --sweep or --find-capacity: profile only this level (its number, from 1); implies --profile",
        check=at_least(1),
        web_form=False,
    )

    @property
    def kernel_timestamps(self) -> bool:
        return not self.no_kernel_timestamps


@dataclass(frozen=True)
class OutputOptions:
    """LLM output: verdicts and live figures (distributed: at the master; --metrics-port on each worker too)"""

    check: tuple[str, ...] = option(
        "list",
        ("--check",),
        (),
        "Judge the run's summary at its end: KEY OP NUMBER (p99_ttft_ms<=2500, failed==0, "
        "steady.p99_ttft_ms<=2000); repeatable; a failed one ends the process with status 3 (needs --csv)",
        check=lambda texts, _name: next((p for p in map(check_error, texts) if p), None),
        web_form=False,
    )
    check_inconclusive: str = option(
        "str",
        ("--check-inconclusive",),
        "fail",
        "A --check whose interval straddles its bound: fail (default) or pass",
        choices=("fail", "pass"),
        web_form=False,
    )
    metrics_port: int | None = option(
        "int",
        ("--metrics-port",),
        None,
        "Serve the suite's live figures for Prometheus at http://HOST:PORT/metrics, on --web-host or all "
        "interfaces (headless runs, workers; 0: a free port, logged); the web UI serves them at /metrics too",
        check=at_least(0),
        web_form=False,
    )


@dataclass(frozen=True)
class EnergyOptions:
    """LLM energy and cost: GPU telemetry, price per token"""

    telemetry_url: tuple[str, ...] = option(
        "list",
        ("--telemetry-url",),
        (),
        "A GPU exporter's Prometheus page to scrape through the run (NVIDIA's DCGM exporter, AMD's device "
        "metrics exporter; repeat it for several nodes): power, energy and utilization in the report",
        check=telemetry_urls,
        web_form=False,
    )
    gpu_hour_cost: float | None = option(
        "float",
        ("--gpu-hour-cost",),
        None,
        "What one GPU costs per hour (USD): the report's cost per million tokens (with --gpus)",
        check=positive(),
    )
    gpus: int | None = option(
        "int", ("--gpus",), None, "The GPUs the server runs on, for --gpu-hour-cost", check=at_least(1)
    )


SECTIONS = (LoadOptions, PromptOptions, ServerOptions, MeasurementOptions, OutputOptions, EnergyOptions)
# every option, section by section
OPTIONS: tuple[Option, ...] = tuple(o for section in SECTIONS for o in options_of(section))
# Locust's own --profile (a label grouping runs in Locust Cloud) gives way to the suite's, as vllm bench serve
# spells it: the server's profiler over the measured part. Locust's label stays unset (users/plugin.py).
TAKEN_FROM_LOCUST = ("profile",)
