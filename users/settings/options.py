"""The suite's command-line options, declared once as a table of specs.

``OPTIONS`` drives both ``add_options`` (the ``init_command_line_parser`` listener:
each option gets its ``LOCUST_*`` environment variable and a locust.conf key, its long
name) and ``Settings.from_options``, which checks the parsed values and turns them into
one immutable object, or raises ConfigError with a single line that says what to fix.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from llmclient.errors import ConfigError, one_line_errors
from llmclient.server_metrics import metrics_target
from llmclient.telemetry import telemetry_page
from prompts.images import FORMATS as IMAGE_FORMATS
from prompts.images import parse_size
from reports.checks import check_error
from reports.intervals import ci_level_error
from scheduler.arrivals import ConstantRate, Ramp, RateProfile, Stage, Stages, parse_stages
from scheduler.levels import (
    PROMPT_KINDS,
    AutoSweep,
    CapacitySearch,
    ExplicitSweep,
    Plan,
    PromptLevel,
    parse_sweep,
    prompt_set,
)
from scheduler.slo import goodput_as_slo, parse_slo
from scheduler.trace import FORMATS as TRACE_FORMATS
from users.settings.hosts import STRATEGIES as HOST_STRATEGIES
from users.settings.model_mix import ModelMix

if TYPE_CHECKING:
    from locust.argument_parser import LocustArgumentParser

ENDPOINT_CHOICES = ("chat", "completions", "embeddings", "responses")
ENDPOINT_PATHS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    # vllm bench serve's --endpoint
    "/v1/responses": "responses",
}

# the problem with a value, or None
Check = Callable[[Any], str | None]


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def at_least(low: float, flag: str) -> Check:
    word = "at least 1" if low == 1 else ("0 or more" if low == 0 else f"at least {low:g}")
    return lambda v: None if v is None or v >= low else f"{flag} must be {word}, got {_shown(v)}"


def positive(flag: str, noun: str = "") -> Check:
    what = f"a positive number of {noun}" if noun else "positive"
    return lambda v: None if v is None or v > 0 else f"{flag} must be {what}, got {_shown(v)}"


def between_0_and_1(flag: str) -> Check:
    return lambda v: None if v is None or 0 <= v <= 1 else f"{flag} must be between 0 and 1, got {_shown(v)}"


def parsed_by(parse: Callable[[Any], object]) -> Check:
    """The parser's one-line ValueError, for a non-empty value."""

    def check(value: Any) -> str | None:
        try:
            parse(value) if value else None
        except ValueError as exc:
            return str(exc)
        return None

    return check


def metrics_urls(urls: tuple[str, ...]) -> str | None:
    for url in urls or ():
        try:
            metrics_target(url)
        except ValueError as exc:
            return f"--metrics-url: {exc}"
    return None


def telemetry_urls(urls: tuple[str, ...]) -> str | None:
    for url in urls or ():
        try:
            telemetry_page(url)
        except ValueError as exc:
            return str(exc)
    return None


def existing_file(flag: str) -> Check:
    return lambda v: None if not v or os.path.isfile(v) else f"{flag} {v}: no such file"


@dataclass(frozen=True)
class Option:
    dest: str
    flags: tuple[str, ...]
    # list: repeatable; words: several after one flag
    kind: Literal["int", "float", "str", "flag", "list", "words"]
    default: Any
    help: str
    # default: LOCUST_ + DEST in capitals
    env: str = ""
    check: Check | None = None
    choices: tuple[str, ...] | None = None
    # kept out of the web UI's form, and marked secret
    secret: bool = False
    # shown in the web UI's form
    web_form: bool = True
    # other spellings of a value, taken as the value they name
    aliases: Mapping[str, str] | None = None

    @property
    def env_var(self) -> str:
        return self.env or "LOCUST_" + self.dest.upper()

    @property
    def flag(self) -> str:
        return "/".join(self.flags)


OPTIONS: tuple[Option, ...] = (
    Option(
        "num_requests",
        ("-n", "--num-requests", "--num-prompts"),
        "int",
        None,
        "Total requests in the run: stop issuing at N, let in-flight ones finish, then stop",
        check=positive("-n/--num-requests", "requests"),
    ),
    Option(
        "model",
        ("--model",),
        "str",
        "",
        "Model to request, or several by weight: NAME[:WEIGHT],… (LoRA adapters as vLLM serves them, each "
        "request's model in proportion; default: the first model listed by GET /v1/models)",
        check=parsed_by(ModelMix.parse),
    ),
    Option(
        "max_tokens",
        ("--max-tokens", "--random-output-len"),
        "int",
        512,
        "max_tokens of each request",
        check=at_least(1, "--max-tokens"),
    ),
    Option(
        "input_tokens",
        ("--input-tokens", "--random-input-len"),
        "int",
        2048,
        "Target prompt length in tokens",
        check=at_least(1, "--input-tokens"),
    ),
    Option(
        "ignore_eos",
        ("--ignore-eos",),
        "flag",
        False,
        "Ask vLLM to ignore EOS so every request generates --max-tokens tokens",
    ),
    Option("temperature", ("--temperature",), "float", None, "Sampling temperature (default: the server's)"),
    Option(
        "endpoint",
        ("--endpoint",),
        "str",
        "chat",
        "chat: /v1/chat/completions; completions: /v1/completions; responses: /v1/responses (streamed, "
        "measured as chat); embeddings: /v1/embeddings (one JSON answer: its latency is E2E, no token streams back) "
        "(either path is taken too, as vllm bench serve writes it)",
        choices=ENDPOINT_CHOICES,
        aliases=ENDPOINT_PATHS,
    ),
    Option(
        "api_key",
        ("--api-key",),
        "str",
        None,
        "Bearer token for the server (default: $OPENAI_API_KEY); never written anywhere",
        env="OPENAI_API_KEY",
        secret=True,
    ),
    Option(
        "stream_timeout",
        ("--stream-timeout",),
        "float",
        600.0,
        "Fail a request when no byte arrives for this many seconds",
        check=positive("--stream-timeout"),
    ),
    Option(
        "request_timeout",
        ("--request-timeout",),
        "float",
        None,
        "Fail a request that takes longer than this many seconds in total",
        check=positive("--request-timeout"),
    ),
    Option(
        "prefix_tokens",
        ("--prefix-tokens", "--random-prefix-len"),
        "int",
        0,
        "Tokens of shared prefix at the start of every prompt (0: no sharing)",
        check=at_least(0, "--prefix-tokens"),
    ),
    Option(
        "prefix_groups",
        ("--prefix-groups",),
        "int",
        1,
        "How many distinct shared prefixes; each request picks one",
        check=at_least(1, "--prefix-groups"),
    ),
    Option(
        "input_tokens_stddev",
        ("--input-tokens-stddev",),
        "float",
        0.0,
        "Spread (standard deviation) of prompt lengths around --input-tokens",
        check=at_least(0, "--input-tokens-stddev"),
    ),
    Option(
        "dataset",
        ("--dataset",),
        "str",
        "",
        "JSONL (or JSON array) of prompts or ShareGPT conversations, instead of synthetic prompts",
        check=existing_file("--dataset"),
    ),
    Option(
        "turns",
        ("--turns",),
        "int",
        1,
        "Multi-turn conversations: each user re-sends the history for this many turns",
        check=at_least(1, "--turns"),
    ),
    Option(
        "turn_tokens",
        ("--turn-tokens",),
        "int",
        128,
        "Approximate length of each follow-up user message in multi-turn runs",
        check=at_least(1, "--turn-tokens"),
    ),
    Option(
        "images",
        ("--images",),
        "int",
        0,
        "Attach N synthetic images to each chat or responses request, before its text (their tokens are the "
        "server's, on top of --input-tokens)",
        check=at_least(0, "--images"),
    ),
    Option(
        "image_size",
        ("--image-size",),
        "str",
        "512x512",
        "WIDTHxHEIGHT of each --images image",
        check=parsed_by(parse_size),
    ),
    Option(
        "image_format",
        ("--image-format",),
        "str",
        "jpeg",
        "png or jpeg (a data URL in the request)",
        choices=IMAGE_FORMATS,
    ),
    Option(
        "image_share",
        ("--image-share",),
        "flag",
        False,
        "The same --images in every request (the server's multimodal and prefix caches can help), not new "
        "ones each (distinct images cost the client CPU: about 25 ms per 512x512 jpeg)",
    ),
    Option(
        "embed_batch",
        ("--embed-batch",),
        "int",
        1,
        "--endpoint embeddings: the prompts each request embeds (its input list; -n counts requests)",
        check=at_least(1, "--embed-batch"),
    ),
    Option(
        "tokenizer",
        ("--tokenizer",),
        "str",
        "",
        "The served model's tokenizer (local folder or HF cache) to size prompts (default: server /tokenize)",
    ),
    Option(
        "warmup",
        ("--warmup",),
        "int",
        0,
        "Unmeasured requests per prefix group sent before measuring, to prime the prefix cache",
        check=at_least(0, "--warmup"),
    ),
    Option(
        "reset_prefix_cache",
        ("--reset-prefix-cache",),
        "flag",
        False,
        "POST /reset_prefix_cache before the run (vLLM needs VLLM_SERVER_DEV_MODE=1)",
    ),
    Option(
        "metrics_interval",
        ("--metrics-interval",),
        "float",
        5.0,
        "Seconds between scrapes of the server's /metrics (0: do not scrape)",
        check=at_least(0, "--metrics-interval"),
    ),
    Option(
        "metrics_port",
        ("--metrics-port",),
        "int",
        None,
        "Serve the suite's live figures for Prometheus at http://HOST:PORT/metrics, on --web-host or all "
        "interfaces (headless runs, workers; 0: a free port, logged); the web UI serves them at /metrics too",
        check=at_least(0, "--metrics-port"),
        web_form=False,
    ),
    Option(
        "max_fail_ratio",
        ("--max-fail-ratio",),
        "float",
        None,
        "Stop the run early once the share of failed requests exceeds this (0-1), after 20 requests",
        check=between_0_and_1("--max-fail-ratio"),
    ),
    Option(
        "ca_bundle",
        ("--ca-bundle",),
        "str",
        "",
        "CA certificates (PEM) to verify an https server with",
        check=existing_file("--ca-bundle"),
    ),
    Option("insecure", ("--insecure",), "flag", False, "Do not verify the https server's certificate"),
    Option(
        "no_kernel_timestamps",
        ("--no-kernel-timestamps",),
        "flag",
        False,
        "Date each read when the client gets to it, not by the kernel's arrival time (Linux), to compare",
    ),
    Option("seed", ("--seed",), "int", 0, "Seed for the prompt sets and arrival schedules, so runs are repeatable"),
    Option(
        "request_rate",
        ("--request-rate",),
        "float",
        None,
        "Open loop: requests per second for the whole run (all processes and workers), sent when due "
        "whatever earlier requests do; -u then only keeps Locust's users alive (no throttling)",
        check=positive("--request-rate"),
    ),
    Option(
        "burstiness",
        ("--burstiness",),
        "float",
        1.0,
        "Open loop: gamma shape of the gaps between arrivals (1: Poisson; <1 burstier; >1 smoother; inf: even)",
        check=positive("--burstiness"),
    ),
    Option(
        "max_concurrency",
        ("--max-concurrency",),
        "int",
        None,
        "Open loop: at most this many requests in flight (split among processes); a request waits for a "
        "free slot, and the wait is its queue_s (default: no cap)",
        check=at_least(1, "--max-concurrency"),
    ),
    Option(
        "ramp_up",
        ("--ramp-up", "--ramp-up-strategy"),
        "str",
        "",
        "Open loop: the rate climbs over the run's -n requests from --ramp-up-start to --ramp-up-end",
        choices=("", "linear", "exponential"),
    ),
    Option(
        "ramp_up_start",
        ("--ramp-up-start", "--ramp-up-start-rps"),
        "float",
        None,
        "Open loop: the rate of the first request (req/s)",
        check=at_least(0, "--ramp-up-start"),
    ),
    Option(
        "ramp_up_end",
        ("--ramp-up-end", "--ramp-up-end-rps"),
        "float",
        None,
        "Open loop: the rate of the last request (req/s)",
        check=positive("--ramp-up-end"),
    ),
    Option(
        "stages",
        ("--stages",),
        "str",
        "",
        "Load in stages: DURATION:RATE,... (open loop, e.g. 30s:5,2m:20) or DURATION:USERSu,... (a closed loop "
        "in steps, e.g. 30s:8u,1m:32u); each row carries its stage number",
        check=parsed_by(parse_stages),
    ),
    Option(
        "sweep",
        ("--sweep",),
        "str",
        "",
        "Levels in one run: rate:R1,R2,... (open loop), concurrency:C1,C2,... (closed loop), "
        "prefix-groups:G1,G2,... or prefix-tokens:P1,P2,... (the prompts' sharing; at --max-concurrency or "
        "--request-rate), or auto (synchronous, throughput, then rates between); each row carries its level",
        check=parsed_by(parse_sweep),
    ),
    Option(
        "level_duration",
        ("--level-duration",),
        "float",
        None,
        "Sweep and capacity search: seconds of sending at each level",
        check=positive("--level-duration"),
    ),
    Option(
        "level_requests",
        ("--level-requests",),
        "int",
        None,
        "Sweep and capacity search: requests at each level (with --level-duration: whichever ends first)",
        check=at_least(1, "--level-requests"),
    ),
    Option(
        "slo",
        ("--slo",),
        "str",
        "",
        "Service-level objectives, milliseconds: ttft_ms=500,tpot_ms=50,e2el_ms=10000 (goodput, attainment)",
        check=parsed_by(parse_slo),
    ),
    Option(
        "goodput",
        ("--goodput",),
        "words",
        (),
        "vllm bench serve's spelling of --slo: KEY:MS ... (ttft:500 tpot:50 e2el:10000); give one of the two",
        check=parsed_by(goodput_as_slo),
    ),
    Option(
        "slo_attainment",
        ("--slo-attainment",),
        "float",
        0.99,
        "The share of requests that must meet every --slo for a level to pass",
        check=lambda v: None if 0 < v <= 1 else f"--slo-attainment must be above 0 and at most 1, got {v:g}",
    ),
    Option(
        "ci_level",
        ("--ci-level",),
        "float",
        0.95,
        "Confidence level of the summary's intervals (<key>_ci = [low, high]; also python -m reports --ci-level)",
        check=lambda v: ci_level_error(v),
    ),
    Option(
        "check",
        ("--check",),
        "list",
        (),
        "Judge the run's summary at its end: KEY OP NUMBER (p99_ttft_ms<=2500, failed==0, "
        "steady.p99_ttft_ms<=2000); repeatable; a failed one ends the process with status 3 (needs --csv)",
        check=lambda texts: next((p for p in map(check_error, texts) if p), None),
        web_form=False,
    ),
    Option(
        "check_inconclusive",
        ("--check-inconclusive",),
        "str",
        "fail",
        "A --check whose interval straddles its bound: fail (default) or pass",
        choices=("fail", "pass"),
        web_form=False,
    ),
    Option(
        "repeat",
        ("--repeat",),
        "int",
        1,
        "Run the workload (each level of a --sweep) K times in this run, the prefix cache reset (else warmed "
        "up equally) before each; levels interleaved; the summary's intervals come from the repetitions",
        check=at_least(1, "--repeat"),
    ),
    Option(
        "find_capacity",
        ("--find-capacity",),
        "flag",
        False,
        "Search for the highest request rate that meets --slo at --slo-attainment (levels of one run)",
    ),
    Option(
        "host_strategy",
        ("--host-strategy",),
        "str",
        "round-robin",
        "With several hosts in -H (comma-separated replicas): round-robin, or least-inflight (the host with the "
        "fewest of this process's requests in flight)",
        choices=HOST_STRATEGIES,
    ),
    Option(
        "metrics_url",
        ("--metrics-url",),
        "list",
        (),
        "A replica's /metrics to scrape (repeat it, or comma-separate, for several; default: each host of -H); "
        "each is reported apart, with the skew between them",
        check=metrics_urls,
        web_form=False,
    ),
    Option(
        "telemetry_url",
        ("--telemetry-url",),
        "list",
        (),
        "A GPU exporter's Prometheus page to scrape through the run (NVIDIA's DCGM exporter, AMD's device "
        "metrics exporter; repeat it for several nodes): power, energy and utilization in the report",
        check=telemetry_urls,
        web_form=False,
    ),
    Option(
        "gpu_hour_cost",
        ("--gpu-hour-cost",),
        "float",
        None,
        "What one GPU costs per hour (USD): the report's cost per million tokens (with --gpus)",
        check=positive("--gpu-hour-cost"),
    ),
    Option(
        "gpus",
        ("--gpus",),
        "int",
        None,
        "The GPUs the server runs on, for --gpu-hour-cost",
        check=at_least(1, "--gpus"),
    ),
    Option(
        "trace_context",
        ("--trace-context",),
        "flag",
        False,
        "Send a W3C traceparent header with each request (its trace id in the trace_id column), so a "
        "server that traces requests (vLLM --otlp-traces-endpoint) can be joined to the rows",
    ),
    Option(
        "otlp_port",
        ("--otlp-port",),
        "int",
        None,
        "Receive the server's OTLP spans (HTTP/protobuf, POST /v1/traces) on this port during the run and "
        "join each request's gen_ai.latency.* timings to its row by trace id; implies --trace-context",
        check=at_least(1, "--otlp-port"),
        web_form=False,
    ),
    Option(
        "profile",
        ("--profile",),
        "flag",
        False,
        "Run the server's profiler over the measured part: POST /start_profile after the warm-up, "
        "/stop_profile at the end (vLLM needs --profiler-config)",
        web_form=False,
    ),
    Option(
        "profile_level",
        ("--profile-level",),
        "int",
        None,
        "With --sweep or --find-capacity: profile only this level (its number, from 1); implies --profile",
        check=at_least(1, "--profile-level"),
        web_form=False,
    ),
    Option(
        "calibrate",
        ("--calibrate",),
        "flag",
        False,
        "Before the run, measure the client's own floor on this machine (TTFT/ITL error, chunks per CPU "
        "second) at the run's concurrency and sizes against a zero-latency emulator (about 10 s)",
        web_form=False,
    ),
    Option(
        "trace",
        ("--trace",),
        "str",
        "",
        "Replay a trace: each request sent at its timestamp with exactly its input and output lengths "
        "(Mooncake JSONL with hash_ids, an Azure-style CSV, or a PREFIX_requests.csv); -n and -t cut it",
        check=existing_file("--trace"),
    ),
    Option(
        "trace_speed",
        ("--trace-speed",),
        "float",
        1.0,
        "Replay the trace this many times faster (0.5: at half speed)",
        check=positive("--trace-speed"),
    ),
    Option(
        "trace_block_tokens",
        ("--trace-block-tokens",),
        "int",
        512,
        "Tokens per hash id of the trace (Mooncake: 512); equal ids are identical blocks",
        check=at_least(1, "--trace-block-tokens"),
    ),
    Option(
        "trace_format",
        ("--trace-format",),
        "str",
        "",
        "mooncake, azure or requests (default: guessed from the file)",
        choices=("", *TRACE_FORMATS),
    ),
)


# Locust's own --profile (a label grouping runs in Locust Cloud) gives way to the suite's, as vllm bench serve
# spells it: the server's profiler over the measured part. Locust's label stays unset (users/plugin.py).
TAKEN_FROM_LOCUST = ("profile",)

# --help's titled groups, each option in one
GROUPS: dict[str, tuple[str, ...]] = {
    "LLM load: how requests are sent": (
        "num_requests",
        "request_rate",
        "burstiness",
        "max_concurrency",
        "ramp_up",
        "ramp_up_start",
        "ramp_up_end",
        "stages",
        "sweep",
        "level_duration",
        "level_requests",
        "find_capacity",
        "repeat",
        "trace",
        "trace_speed",
        "trace_block_tokens",
        "trace_format",
        "max_fail_ratio",
        "seed",
    ),
    "LLM prompts: what each request asks": (
        "max_tokens",
        "input_tokens",
        "input_tokens_stddev",
        "ignore_eos",
        "temperature",
        "prefix_tokens",
        "prefix_groups",
        "dataset",
        "turns",
        "turn_tokens",
        "tokenizer",
        "warmup",
        "images",
        "image_size",
        "image_format",
        "image_share",
        "embed_batch",
    ),
    "LLM server: where requests go": (
        "model",
        "endpoint",
        "api_key",
        "stream_timeout",
        "request_timeout",
        "ca_bundle",
        "insecure",
        "reset_prefix_cache",
        "host_strategy",
        "metrics_url",
        "metrics_interval",
    ),
    "LLM measurement: SLOs, intervals, the client's floor": (
        "slo",
        "goodput",
        "slo_attainment",
        "ci_level",
        "calibrate",
        "no_kernel_timestamps",
        "trace_context",
        "otlp_port",
        "profile",
        "profile_level",
    ),
    "LLM output: verdicts and live figures (distributed: at the master; --metrics-port on each worker too)": (
        "check",
        "check_inconclusive",
        "metrics_port",
    ),
    "LLM energy and cost: GPU telemetry, price per token": ("telemetry_url", "gpu_hour_cost", "gpus"),
}


def help_text(opt: Option) -> str:
    """An option's help as --help shows it: with its default and its environment variable."""
    # a flag's False is no default worth saying; a 0 is (0 == False, so compare by identity)
    unsaid = opt.secret or opt.default is None or opt.default is False or opt.default in ("", ())
    default = "" if unsaid else f"default {opt.default}; "
    return f"{opt.help} [{default}env {opt.env_var}]"


def before_parsing(dest: str, argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """An option's text as the command line (or else its environment variable) gives it, read before Locust
    parses them: for what a locustfile must decide at import time (which classes are concrete)."""
    option = next(o for o in OPTIONS if o.dest == dest)
    for i, arg in enumerate(argv):
        for flag in option.flags:
            if arg == flag and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    return environ.get(option.env_var, "")


def user_class_named(name: str, argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Locust's own choice of user classes, read before it parses it: the class named on the command line
    (or in LOCUST_USER_CLASSES), or this process a worker (the master names the classes)."""
    named = name in argv or name in environ.get("LOCUST_USER_CLASSES", "").split()
    return named or "--worker" in argv or environ.get("LOCUST_MODE_WORKER", "").lower() in ("1", "true")


def _int_arg(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _float_arg(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


ARG_TYPES: dict[str, Callable[[str], Any]] = {"int": _int_arg, "float": _float_arg}


def _check_csv_prefix(text: str) -> str:
    """--csv must name a folder we can create and write in, before Locust opens its files."""
    folder = os.path.dirname(text) or "."
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise argparse.ArgumentTypeError(f"cannot write CSV files to {text!r}: {reason}") from None
    return text


def add_options(parser: LocustArgumentParser, **_kw: object) -> None:
    """Register the suite's options on Locust's parser (configargparse)."""
    # Every argparse error, Locust's own included, becomes one line: no usage dump.
    one_line_errors(parser)
    # validate Locust's --csv before Locust creates the folder
    for action in parser._actions:
        if "--csv" in action.option_strings:
            action.type = _check_csv_prefix
    titled = {title: parser.add_argument_group(title) for title in GROUPS}
    groups = {dest: titled[title] for title, dests in GROUPS.items() for dest in dests}
    for opt in OPTIONS:
        kwargs: dict[str, Any] = {"default": opt.default, "env_var": opt.env_var, "help": help_text(opt)}
        if opt.kind == "flag":
            kwargs["action"] = "store_true"
        elif opt.kind == "list":
            # argparse appends to a fresh list
            kwargs.update(action="append", default=None)
        elif opt.kind == "words":
            kwargs.update(action="extend", nargs="+", default=None)
        elif opt.kind in ARG_TYPES:
            kwargs.update(type=ARG_TYPES[opt.kind], metavar="N" if opt.kind == "int" else "X")
        if opt.choices:
            kwargs.update(choices=opt.choices, metavar="|".join(c for c in opt.choices if c))
        if opt.aliases:
            # before the choices' check
            kwargs["type"] = lambda text, aliases=opt.aliases: aliases.get(text, text)
        if opt.secret:
            kwargs.update(include_in_web_ui=False, is_secret=True)
        elif not opt.web_form:
            kwargs["include_in_web_ui"] = False
        # the suite's meaning replaces Locust's option of that name
        if opt.dest in TAKEN_FROM_LOCUST:
            _remove_option(parser, opt.flag)
        # Locust's own add_argument (its web UI keywords)
        action = parser.add_argument(*opt.flags, **kwargs)
        # then shown in its titled group
        for group in parser._action_groups:
            if action in group._group_actions:
                group._group_actions.remove(action)
        groups[opt.dest]._group_actions.append(action)


def _remove_option(parser: LocustArgumentParser, flag: str) -> None:
    """Take an option of Locust's out of its parser (and its --help), so the suite's can have its name."""
    action = parser._option_string_actions.get(flag)
    if action is not None:
        for option_string in action.option_strings:
            parser._option_string_actions.pop(option_string, None)
        action.container._remove_action(action)


@dataclass(frozen=True)
class Settings:
    """The suite's validated options: one field per entry of OPTIONS (the defaults live there)."""

    num_requests: int | None
    model: str
    max_tokens: int
    input_tokens: int
    ignore_eos: bool
    temperature: float | None
    endpoint: str
    api_key: str | None
    stream_timeout: float
    request_timeout: float | None
    prefix_tokens: int
    prefix_groups: int
    input_tokens_stddev: float
    dataset: str
    turns: int
    turn_tokens: int
    images: int
    image_size: str
    image_format: str
    image_share: bool
    embed_batch: int
    tokenizer: str
    warmup: int
    reset_prefix_cache: bool
    metrics_interval: float
    metrics_port: int | None
    max_fail_ratio: float | None
    ca_bundle: str
    insecure: bool
    no_kernel_timestamps: bool
    seed: int
    request_rate: float | None
    burstiness: float
    max_concurrency: int | None
    ramp_up: str
    ramp_up_start: float | None
    ramp_up_end: float | None
    stages: str
    sweep: str
    level_duration: float | None
    level_requests: int | None
    slo: str
    goodput: tuple[str, ...]
    slo_attainment: float
    ci_level: float
    check: tuple[str, ...]
    check_inconclusive: str
    repeat: int
    find_capacity: bool
    host_strategy: str
    metrics_url: tuple[str, ...]
    telemetry_url: tuple[str, ...]
    gpu_hour_cost: float | None
    gpus: int | None
    trace_context: bool
    otlp_port: int | None
    profile: bool
    profile_level: int | None
    calibrate: bool
    trace: str
    trace_speed: float
    trace_block_tokens: int
    trace_format: str

    @cached_property
    def model_mix(self) -> ModelMix | None:
        """``--model``'s names and weights (None: the server's first model)."""
        return ModelMix.parse(self.model)

    @cached_property
    def slo_limits(self) -> dict[str, float]:
        return parse_slo(self.slo)

    @property
    def scheduled(self) -> bool:
        """The run's schedule (an open loop, a sweep) sends the requests, not Locust's users."""
        return self.open_loop is not None or self.levels or bool(self.trace)

    @property
    def open_loop_run(self) -> bool:
        """One schedule of arrivals for the whole run: a rate profile or a trace (not a sweep's levels)."""
        return (self.open_loop is not None or bool(self.trace)) and not self.levels

    @property
    def ignores_eos(self) -> bool:
        """--ignore-eos, or a trace's exact output lengths."""
        return self.ignore_eos or bool(self.trace)

    @property
    def levels(self) -> bool:
        """A run in levels: a sweep or a capacity search (--repeat makes a run a sweep of one level)."""
        return bool(self.sweep) or self.find_capacity

    def make_plan(self) -> Plan | None:
        """A fresh plan of levels for one test (a capacity search keeps state), or None."""
        saturating = self.max_concurrency or SATURATING_CONCURRENCY
        if self.find_capacity:
            return CapacitySearch(self.slo_attainment, saturating)
        if not self.sweep:
            return None
        kind, values = parse_sweep(self.sweep)
        if kind == "auto":
            return AutoSweep(saturating)
        if kind not in PROMPT_KINDS:
            return ExplicitSweep(kind, values, repeat=self.repeat)
        # prefix-tokens levels without a rate: --max-concurrency in flight
        closed = self.request_rate is None
        return ExplicitSweep(kind, values, self.request_rate, self.max_concurrency if closed else None, self.repeat)

    @cached_property
    def prompt_levels(self) -> tuple[PromptLevel, ...]:
        """``--sweep prefix-groups:…`` or ``prefix-tokens:…``: each level's own prompts; () otherwise."""
        kind, values = parse_sweep(self.sweep) if self.sweep else ("", ())
        if kind == "prefix-groups":
            return tuple(PromptLevel(str(prompt_set(kind, v)), self.prefix_tokens, int(v)) for v in values)
        if kind == "prefix-tokens":
            return tuple(PromptLevel(str(prompt_set(kind, v)), int(v), self.prefix_groups) for v in values)
        return ()

    # read for every request: parsed once (a frozen dataclass keeps it in __dict__)
    @cached_property
    def open_loop(self) -> RateProfile | None:
        """The arrival rate profile of an open-loop run; None for a closed loop (-u users, no wait)."""
        if self.request_rate is not None:
            return ConstantRate(self.request_rate)
        if self.ramp_up and self.ramp_up_start is not None and self.ramp_up_end is not None and self.num_requests:
            return Ramp(self.ramp_up, self.ramp_up_start, self.ramp_up_end, self.num_requests)
        if self.stage_steps and not self.user_stages:
            return Stages(self.stage_steps)
        return None

    @cached_property
    def stage_steps(self) -> tuple[Stage, ...]:
        """``--stages`` parsed (rates or user counts); () without it."""
        return parse_stages(self.stages) if self.stages else ()

    @cached_property
    def user_stages(self) -> tuple[Stage, ...] | None:
        """``--stages`` with user counts: a closed loop in steps, run by Locust's LoadTestShape."""
        stages = self.stage_steps
        return stages if stages and stages[0].users is not None else None

    @property
    def kernel_timestamps(self) -> bool:
        return not self.no_kernel_timestamps

    @classmethod
    def from_options(cls, options: object) -> Settings:
        """Check parsed options (Locust's namespace, or any object with the attributes)."""
        values: dict[str, Any] = {}
        for opt in OPTIONS:
            values[opt.dest] = _option_value(opt, getattr(options, opt.dest, None))
        _fill_in(values)
        users = getattr(options, "num_users", None)
        if users is not None and users <= 0 and getattr(options, "headless", False):
            raise ConfigError(f"-u/--users must be at least 1, got {users}")
        prefix, total = values["prefix_tokens"], values["input_tokens"]
        if prefix and prefix >= total:
            raise ConfigError(
                f"--prefix-tokens ({prefix}) must be smaller than --input-tokens ({total}): "
                "each request needs a unique suffix"
            )
        _check_endpoint(values)
        if (values["gpu_hour_cost"] is None) != (values["gpus"] is None):
            raise ConfigError("--gpu-hour-cost and --gpus go together: the cost is the GPUs' hours at that price")
        _check_open_loop(values)
        if values["repeat"] > 1 and not (values["sweep"] or values["find_capacity"]):
            _repeat_whole_run(values, users)
        _check_levels(values)
        _check_trace(values)
        return cls(**values)


def _option_value(opt: Option, value: Any) -> Any:
    """One option's value, typed and checked, from what Locust parsed or the web UI's form sent."""
    # unset, or an empty web UI field
    if value is None or (value == "" and opt.kind != "str"):
        value = opt.default
    # the web UI's form sends true/false
    elif isinstance(value, str) and opt.kind == "flag":
        value = value.strip().lower() in ("true", "1", "on", "yes")
    # the web UI's form sends text
    elif isinstance(value, str) and opt.kind in ARG_TYPES:
        try:
            value = ARG_TYPES[opt.kind](value.strip())
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"{opt.flag}: {exc}") from None
    if opt.kind == "flag":
        value = bool(value)
    if opt.aliases and isinstance(value, str):
        value = opt.aliases.get(value, value)
    # several after one flag, or one string (space-separated) from the environment
    if opt.kind == "words":
        words: list[Any] = value.split() if isinstance(value, str) else list(value)
        value = tuple(str(w) for w in words)
    # repeated, comma-separated, or one string from an environment variable
    if opt.kind == "list":
        items: list[object] = [value] if isinstance(value, str) else list(value)
        value = tuple(part.strip() for item in items for part in str(item).split(",") if part.strip())
    if opt.choices and value not in opt.choices:
        raise ConfigError(f"{opt.flag} must be one of {', '.join(opt.choices)}, got {value!r}")
    problem = opt.check(value) if opt.check is not None else None
    if problem:
        raise ConfigError(problem)
    return value


def _check_endpoint(values: dict[str, Any]) -> None:
    """What only some endpoints can carry: images (message parts), conversations (chat)."""
    if values["images"] and values["endpoint"] not in ("chat", "responses"):
        raise ConfigError(
            f"--images needs --endpoint chat or responses (images are message parts), not {values['endpoint']}"
        )
    if values["embed_batch"] > 1 and values["endpoint"] != "embeddings":
        raise ConfigError("--embed-batch needs --endpoint embeddings (only an embeddings request takes a list)")
    if values["turns"] > 1 and values["endpoint"] != "chat":
        raise ConfigError("--turns needs --endpoint chat (conversations are chat messages)")


def _fill_in(values: dict[str, Any]) -> None:
    """What one option gives for another: the key from $OPENAI_API_KEY, --goodput as the --slo."""
    values["api_key"] = values["api_key"] or os.environ.get("OPENAI_API_KEY") or None
    if values["goodput"]:
        if values["slo"]:
            raise ConfigError("--slo and --goodput both set the SLO: give one")
        values["slo"] = goodput_as_slo(values["goodput"])
    # spans are joined by the trace ids the requests carry
    if values["otlp_port"] is not None:
        values["trace_context"] = True


def _check_trace(values: dict[str, Any]) -> None:
    """A trace sets the arrivals and each request's lengths itself."""
    if not values["trace"]:
        for flag, dest in (("--trace-speed", "trace_speed"), ("--trace-format", "trace_format")):
            if values[dest] != next(o.default for o in OPTIONS if o.dest == dest):
                raise ConfigError(f"{flag} needs --trace FILE")
        return
    for other, given in (
        ("--request-rate", values["request_rate"]),
        ("--ramp-up", values["ramp_up"]),
        ("--stages", values["stages"]),
        ("--sweep", values["sweep"]),
        ("--find-capacity", values["find_capacity"]),
        ("--dataset", values["dataset"]),
        ("--turns", values["turns"] > 1),
    ):
        if given:
            raise ConfigError(f"--trace sets when each request is sent and its lengths: drop {other}")


def _check_open_loop(values: dict[str, Any]) -> None:
    """One way to set the arrival rate at a time, and what each needs."""
    rate_stages = bool(values["stages"]) and parse_stages(values["stages"])[0].rate is not None
    ways = [
        flag
        for flag, on in (
            ("--request-rate", values["request_rate"]),
            ("--ramp-up", values["ramp_up"]),
            ("--stages", rate_stages),
        )
        if on
    ]
    if len(ways) > 1:
        raise ConfigError(f"{' and '.join(ways)} both set the arrival rate: give one")
    if values["stages"] and not rate_stages and ways:
        raise ConfigError(f"--stages with user counts is a closed loop in steps: drop {ways[0]}")
    if values["ramp_up"]:
        start, end = values["ramp_up_start"], values["ramp_up_end"]
        if start is None or end is None:
            raise ConfigError("--ramp-up needs --ramp-up-start and --ramp-up-end (requests per second)")
        if values["ramp_up"] == "exponential" and not start > 0:
            raise ConfigError("--ramp-up exponential needs --ramp-up-start above 0")
        if not values["num_requests"]:
            raise ConfigError("--ramp-up climbs over the run's requests: give -n")
    elif values["ramp_up_start"] is not None or values["ramp_up_end"] is not None:
        raise ConfigError("--ramp-up-start and --ramp-up-end need --ramp-up linear|exponential")
    if (
        not ways
        and values["max_concurrency"] is not None
        and not (values["sweep"] or values["find_capacity"] or values["trace"])
    ):
        raise ConfigError(
            "--max-concurrency caps an open loop: give --request-rate, --ramp-up, --stages or --trace (-u is the concurrency of a closed loop)"
        )
    if ways and values["turns"] > 1:
        raise ConfigError("--turns needs a closed loop (each user holds a conversation): drop the arrival rate")


# the throughput level's concurrency without --max-concurrency (vLLM's max_num_seqs)
SATURATING_CONCURRENCY = 256


def _check_levels(values: dict[str, Any]) -> None:
    """A sweep or a capacity search: its own levels set the load, and it needs to know how long each runs."""
    if values["sweep"] and values["find_capacity"]:
        raise ConfigError("--sweep and --find-capacity each plan the run's levels: give one")
    if values["find_capacity"] and not values["slo"]:
        raise ConfigError("--find-capacity needs --slo (e.g. --slo ttft_ms=2000,tpot_ms=100)")
    if values["repeat"] > 1 and (values["find_capacity"] or values["sweep"].strip() == "auto"):
        raise ConfigError(
            "--repeat repeats the levels of an explicit sweep: --sweep auto and --find-capacity "
            "choose theirs as they go"
        )
    if not (values["sweep"] or values["find_capacity"]):
        if values["level_duration"] is not None or values["level_requests"] is not None:
            raise ConfigError("--level-duration and --level-requests need --sweep or --find-capacity")
        if values["profile_level"] is not None:
            raise ConfigError("--profile-level needs --sweep or --find-capacity (a run without levels: --profile)")
        return
    flag = "--sweep" if values["sweep"] else "--find-capacity"
    if values["level_duration"] is None and values["level_requests"] is None:
        raise ConfigError(f"{flag} needs --level-duration S or --level-requests N (how long each level runs)")
    kind, levels = parse_sweep(values["sweep"]) if values["sweep"] else ("", ())
    by_prompts = kind in PROMPT_KINDS
    if by_prompts:
        _check_prompt_levels(values, kind, levels)
    for other, given in (
        ("--request-rate", values["request_rate"] and not by_prompts),
        ("--ramp-up", values["ramp_up"]),
        ("--stages", values["stages"]),
        ("-n", values["num_requests"]),
    ):
        if given:
            raise ConfigError(f"{flag} sets the load level by level: drop {other}")
    if values["turns"] > 1:
        raise ConfigError(f"{flag} needs single-turn requests: drop --turns")


def _check_prompt_levels(values: dict[str, Any], kind: str, levels: tuple[float, ...]) -> None:
    """Levels that differ in their prompts: synthetic ones, at one load."""
    if values["dataset"]:
        raise ConfigError(f"--sweep {kind} builds synthetic prompts: drop --dataset")
    if kind == "prefix-groups":
        if values["request_rate"] is None:
            raise ConfigError("--sweep prefix-groups runs its levels at one rate: give --request-rate R")
        if not values["prefix_tokens"]:
            raise ConfigError("--sweep prefix-groups needs --prefix-tokens P (the shared prefixes' length)")
        return
    if values["request_rate"] is None and values["max_concurrency"] is None:
        raise ConfigError(
            "--sweep prefix-tokens runs its levels at one load: give --max-concurrency C (a closed "
            "loop of C in flight) or --request-rate R"
        )
    if values["prefix_tokens"]:
        raise ConfigError("--sweep prefix-tokens sets each level's shared tokens: drop --prefix-tokens")
    longest = max(levels)
    if longest >= values["input_tokens"]:
        raise ConfigError(
            f"--sweep prefix-tokens: {longest:g} shared tokens need a longer --input-tokens "
            f"({values['input_tokens']}): each request needs a unique suffix"
        )


def _repeat_whole_run(values: dict[str, Any], users: int | None) -> None:
    """``--repeat K`` without a sweep: the workload becomes a sweep of one level repeated K times, its -u in flight
    (a closed loop) or its --request-rate, -n requests (or --level-duration seconds) each."""
    for flag, given in (
        ("--ramp-up", values["ramp_up"]),
        ("--stages", values["stages"]),
        ("--trace", values["trace"]),
        ("--turns", values["turns"] > 1),
    ):
        if given:
            raise ConfigError(f"--repeat repeats one steady load: drop {flag}")
    if values["level_requests"] is not None:
        raise ConfigError("--repeat without --sweep: -n N gives each repetition's requests (drop --level-requests)")
    if not values["num_requests"] and values["level_duration"] is None:
        raise ConfigError("--repeat K needs -n N (requests in each repetition) or --level-duration S")
    values["level_requests"], values["num_requests"] = values["num_requests"], None
    rate = values["request_rate"]
    values["sweep"] = f"rate:{rate!r}" if rate is not None else f"concurrency:{users or 1}"
    values["request_rate"] = None
