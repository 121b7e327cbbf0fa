"""Command-line options of the suite, and their validation.

``add_options`` is the ``init_command_line_parser`` listener: each option gets
a ``LOCUST_*`` environment variable and a locust.conf key (its long name), and
shows in ``locust --help``. ``Settings.from_options`` checks the parsed values
and turns them into one immutable object, or raises ConfigError with a single
line that says what to fix.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

ENDPOINT_CHOICES = ("chat", "completions")


class ConfigError(Exception):
    """Bad input from the user: printed as one line, then a non-zero exit."""


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


def _one_line_error(parser: argparse.ArgumentParser):
    def error(message: str) -> None:
        sys.stderr.write(f"{parser.prog}: error: {message}\n")
        sys.exit(2)

    return error


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


def add_options(parser: Any, **_kw: object) -> None:
    """Register the suite's options on Locust's parser (configargparse)."""
    # Every argparse error, Locust's own included, becomes one line: no usage dump.
    parser.error = _one_line_error(parser)
    for action in parser._actions:  # validate Locust's --csv before Locust creates the folder
        if "--csv" in action.option_strings:
            action.type = _check_csv_prefix

    parser.add_argument(
        "-n",
        "--num-requests",
        type=_int_arg,
        default=None,
        env_var="LOCUST_NUM_REQUESTS",
        help="Total requests in the run: stop issuing at N, let in-flight ones finish, then stop",
    )
    parser.add_argument(
        "--model",
        default="",
        env_var="LOCUST_MODEL",
        help="Model name to request (default: the first model listed by GET /v1/models)",
    )
    parser.add_argument("--max-tokens", type=_int_arg, default=512, env_var="LOCUST_MAX_TOKENS", help="max_tokens")
    parser.add_argument(
        "--input-tokens",
        type=_int_arg,
        default=2048,
        env_var="LOCUST_INPUT_TOKENS",
        help="Target prompt length in tokens",
    )
    parser.add_argument(
        "--ignore-eos",
        action="store_true",
        default=False,
        env_var="LOCUST_IGNORE_EOS",
        help="Ask vLLM to ignore EOS so every request generates --max-tokens tokens",
    )
    parser.add_argument(
        "--temperature",
        type=_float_arg,
        default=None,
        env_var="LOCUST_TEMPERATURE",
        help="Sampling temperature (default: the server's)",
    )
    parser.add_argument(
        "--endpoint",
        choices=ENDPOINT_CHOICES,
        default="chat",
        env_var="LOCUST_ENDPOINT",
        help="chat: /v1/chat/completions; completions: /v1/completions",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        env_var="OPENAI_API_KEY",
        include_in_web_ui=False,
        is_secret=True,
        help="Bearer token for the server (default: $OPENAI_API_KEY); never written anywhere",
    )
    parser.add_argument(
        "--stream-timeout",
        type=_float_arg,
        default=600.0,
        env_var="LOCUST_STREAM_TIMEOUT",
        help="Fail a request when no byte arrives for this many seconds",
    )
    parser.add_argument(
        "--request-timeout",
        type=_float_arg,
        default=None,
        env_var="LOCUST_REQUEST_TIMEOUT",
        help="Fail a request that takes longer than this many seconds in total",
    )
    parser.add_argument(
        "--prefix-tokens",
        type=_int_arg,
        default=0,
        env_var="LOCUST_PREFIX_TOKENS",
        help="Tokens of shared prefix at the start of every prompt (0: no sharing)",
    )
    parser.add_argument(
        "--prefix-groups",
        type=_int_arg,
        default=1,
        env_var="LOCUST_PREFIX_GROUPS",
        help="How many distinct shared prefixes; each request picks one",
    )
    parser.add_argument(
        "--input-tokens-stddev",
        type=_float_arg,
        default=0.0,
        env_var="LOCUST_INPUT_TOKENS_STDDEV",
        help="Spread (standard deviation) of prompt lengths around --input-tokens",
    )
    parser.add_argument(
        "--dataset",
        default="",
        env_var="LOCUST_DATASET",
        help="JSONL (or JSON array) of prompts or ShareGPT conversations, instead of synthetic prompts",
    )
    parser.add_argument(
        "--turns",
        type=_int_arg,
        default=1,
        env_var="LOCUST_TURNS",
        help="Multi-turn conversations: each user re-sends the history for this many turns",
    )
    parser.add_argument(
        "--turn-tokens",
        type=_int_arg,
        default=128,
        env_var="LOCUST_TURN_TOKENS",
        help="Approximate length of each follow-up user message in multi-turn runs",
    )
    parser.add_argument(
        "--tokenizer",
        default="",
        env_var="LOCUST_TOKENIZER",
        help="The served model's tokenizer (local folder or HF cache) to size prompts (default: server /tokenize)",
    )
    parser.add_argument(
        "--warmup",
        type=_int_arg,
        default=0,
        env_var="LOCUST_WARMUP",
        help="Unmeasured requests per prefix group sent before measuring, to prime the prefix cache",
    )
    parser.add_argument(
        "--reset-prefix-cache",
        action="store_true",
        default=False,
        env_var="LOCUST_RESET_PREFIX_CACHE",
        help="POST /reset_prefix_cache before the run (vLLM needs VLLM_SERVER_DEV_MODE=1)",
    )
    parser.add_argument(
        "--metrics-interval",
        type=_float_arg,
        default=5.0,
        env_var="LOCUST_METRICS_INTERVAL",
        help="Seconds between scrapes of the server's /metrics (0: do not scrape)",
    )
    parser.add_argument(
        "--max-fail-ratio",
        type=_float_arg,
        default=None,
        env_var="LOCUST_MAX_FAIL_RATIO",
        help="Stop the run early once the share of failed requests exceeds this (0-1), after 20 requests",
    )
    parser.add_argument(
        "--ca-bundle",
        default="",
        env_var="LOCUST_CA_BUNDLE",
        help="CA certificates (PEM) to verify an https server with",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        default=False,
        env_var="LOCUST_INSECURE",
        help="Do not verify the https server's certificate",
    )
    parser.add_argument(
        "--no-kernel-timestamps",
        action="store_true",
        default=False,
        env_var="LOCUST_NO_KERNEL_TIMESTAMPS",
        help="Date each read when the client gets to it, not by the kernel's arrival time (Linux), to compare",
    )
    parser.add_argument(
        "--seed",
        type=_int_arg,
        default=0,
        env_var="LOCUST_SEED",
        help="Seed for the prompt sets, so runs are repeatable",
    )


@dataclass(frozen=True)
class Settings:
    """The suite's validated options."""

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
    seed: int
    prefix_tokens: int = 0
    prefix_groups: int = 1
    input_tokens_stddev: float = 0.0
    dataset: str = ""
    turns: int = 1
    turn_tokens: int = 128
    tokenizer: str = ""
    warmup: int = 0
    reset_prefix_cache: bool = False
    metrics_interval: float = 5.0
    max_fail_ratio: float | None = None
    ca_bundle: str = ""
    insecure: bool = False
    kernel_timestamps: bool = True

    @classmethod
    def from_options(cls, options: Any) -> Settings:
        def get(name: str, default: object = None) -> Any:
            return getattr(options, name, default)

        num = get("num_requests")
        if num is not None and num <= 0:
            raise ConfigError(f"-n/--num-requests must be a positive number of requests, got {num}")
        users = get("num_users")
        if users is not None and users <= 0 and get("headless"):
            raise ConfigError(f"-u/--users must be at least 1, got {users}")
        max_tokens = get("max_tokens", 512)
        if max_tokens <= 0:
            raise ConfigError(f"--max-tokens must be at least 1, got {max_tokens}")
        input_tokens = get("input_tokens", 2048)
        if input_tokens <= 0:
            raise ConfigError(f"--input-tokens must be at least 1, got {input_tokens}")
        stream_timeout = get("stream_timeout", 600.0)
        if stream_timeout <= 0:
            raise ConfigError(f"--stream-timeout must be positive, got {stream_timeout:g}")
        request_timeout = get("request_timeout")
        if request_timeout is not None and request_timeout <= 0:
            raise ConfigError(f"--request-timeout must be positive, got {request_timeout:g}")
        prefix_tokens = get("prefix_tokens", 0) or 0
        if prefix_tokens < 0:
            raise ConfigError(f"--prefix-tokens must be 0 or more, got {prefix_tokens}")
        if prefix_tokens and prefix_tokens >= input_tokens:
            raise ConfigError(
                f"--prefix-tokens ({prefix_tokens}) must be smaller than --input-tokens ({input_tokens}): "
                "each request needs a unique suffix"
            )
        prefix_groups = get("prefix_groups", 1) or 1
        if prefix_groups < 1:
            raise ConfigError(f"--prefix-groups must be at least 1, got {prefix_groups}")
        stddev = get("input_tokens_stddev", 0.0) or 0.0
        if stddev < 0:
            raise ConfigError(f"--input-tokens-stddev must be 0 or more, got {stddev:g}")
        turns = get("turns", 1) or 1
        if turns < 1:
            raise ConfigError(f"--turns must be at least 1, got {turns}")
        endpoint = get("endpoint", "chat")
        if turns > 1 and endpoint != "chat":
            raise ConfigError("--turns needs --endpoint chat (conversations are chat messages)")
        warmup = get("warmup", 0) or 0
        if warmup < 0:
            raise ConfigError(f"--warmup must be 0 or more, got {warmup}")
        interval = get("metrics_interval", 5.0)
        interval = 5.0 if interval is None else interval
        if interval < 0:
            raise ConfigError(f"--metrics-interval must be 0 or more, got {interval:g}")
        if endpoint not in ENDPOINT_CHOICES:
            raise ConfigError(f"--endpoint must be one of {', '.join(ENDPOINT_CHOICES)}, got {endpoint!r}")
        ratio = get("max_fail_ratio")
        if ratio is not None and not 0 <= ratio <= 1:
            raise ConfigError(f"--max-fail-ratio must be between 0 and 1, got {ratio:g}")
        ca_bundle = get("ca_bundle", "") or ""
        if ca_bundle and not os.path.isfile(ca_bundle):
            raise ConfigError(f"--ca-bundle {ca_bundle}: no such file")
        return cls(
            num_requests=num,
            model=get("model", "") or "",
            max_tokens=max_tokens,
            input_tokens=input_tokens,
            ignore_eos=bool(get("ignore_eos", False)),
            temperature=get("temperature"),
            endpoint=endpoint,
            api_key=get("api_key") or os.environ.get("OPENAI_API_KEY") or None,
            stream_timeout=stream_timeout,
            request_timeout=request_timeout,
            seed=get("seed", 0) or 0,
            prefix_tokens=prefix_tokens,
            prefix_groups=prefix_groups,
            input_tokens_stddev=stddev,
            dataset=get("dataset", "") or "",
            turns=turns,
            turn_tokens=max(1, get("turn_tokens", 128) or 128),
            tokenizer=get("tokenizer", "") or "",
            warmup=warmup,
            reset_prefix_cache=bool(get("reset_prefix_cache", False)),
            metrics_interval=interval,
            max_fail_ratio=ratio,
            ca_bundle=ca_bundle,
            insecure=bool(get("insecure", False)),
            kernel_timestamps=not get("no_kernel_timestamps", False),
        )
