"""The emulator's configuration: four dataclasses whose fields are its command line.

Each field says its flag's help (and, where the flag differs from the field, how), so a setting is
written once: its default, its meaning and its flag all come from here (``add_flags``, ``from_args``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from emulator.faults import KINDS


def setting(
    default: Any,
    help: str,
    *,
    flag: str = "",
    metavar: str | None = None,
    choices: tuple[Any, ...] | None = None,
    many: str = "",
    negated: bool = False,
    switch: bool = False,
    read: Callable[[Any], Any] | None = None,
) -> Any:
    """A field that is a flag. ``flag``: its name when not the field's; ``many``: ``"list"`` (several after the flag) or ``"repeat"``
    (the flag repeated);
    ``negated``: a ``--no-…`` flag that turns the field off; ``switch``: ``--x``/``--no-x``;
    ``read``: turns the flag's value into the field's."""
    meta = {
        "help": help,
        "flag": flag,
        "metavar": metavar,
        "choices": choices,
        "many": many,
        "negated": negated,
        "switch": switch,
        "read": read,
    }
    if isinstance(default, list | tuple):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


def _names(given: list[str]) -> tuple[str, ...]:
    """``--lora-modules NAME[=PATH] …``: the names (the path is not read)."""
    return tuple(m.split("=", 1)[0] for m in given)


@dataclass(frozen=True)
class ListenConfig:
    """where it listens"""

    host: str = setting("127.0.0.1", "the address to listen on")
    port: int = setting(8000, "0 picks a free port (printed on start)")
    ssl_certfile: str | None = setting(None, "serve https with this certificate (PEM)")
    ssl_keyfile: str | None = setting(None, "the certificate's private key (PEM)")


@dataclass(frozen=True)
class ServerConfig:
    """what it serves, and how it answers"""

    model: str = setting("emulated-llama", "the model name it serves (GET /v1/models)")
    reasoning_tokens: int = setting(
        0,
        "chat: stream each answer's first N tokens as reasoning_content (a reasoning model's, as vLLM's "
        "reasoning parser sends them)",
        metavar="N",
    )
    image_tokens: int = setting(
        256, "chat: the prompt tokens each image part costs (a vision model's, counted in the usage)", metavar="N"
    )
    lora_modules: tuple[str, ...] = setting(
        (),
        "LoRA adapters served beside the model, as vLLM's flag (the path is not read): each a model name of "
        "its own, its prefix-cache blocks apart from the base model's",
        metavar="NAME[=PATH]",
        many="list",
        read=_names,
    )
    runner: str = setting(
        "auto",
        "as vLLM's flag: generate serves no /v1/embeddings, pooling only /v1/embeddings (404 for the rest, as "
        "vLLM answers); auto (the emulator's default) serves both",
        choices=("auto", "generate", "pooling"),
    )
    api_key: str | None = setting(None, "require this Bearer token on /v1/*")
    request_log: str | None = setting(None, "append one JSON line of ground truth per request")
    session_header: str = setting(
        "x-session-id", "the header naming a request's session (as routers read it): kept in the truth log"
    )
    include_cached_tokens: bool = setting(
        True,
        "omit usage.prompt_tokens_details (as vLLM without --enable-prompt-tokens-details)",
        flag="--no-cached-tokens",
        negated=True,
    )
    tokenize: bool = setting(
        True, "disable POST /tokenize (as some servers lack it)", flag="--no-tokenize", negated=True
    )
    dev_mode: bool = setting(
        True,
        "disable POST /reset_prefix_cache (VLLM_SERVER_DEV_MODE=1 enables it in vLLM)",
        flag="--no-dev-mode",
        negated=True,
    )
    otlp_traces_endpoint: str = setting(
        "",
        "as vLLM's: send a span per request whose traceparent names a trace, OTLP/HTTP protobuf (URL or "
        "URL/v1/traces), with gen_ai.latency.* attributes from the emulator's own clock",
        metavar="URL",
    )
    profiler: bool = setting(
        False,
        "as vLLM's: any value serves POST /start_profile and /stop_profile (404 without), and /emulator/stats "
        "counts the requests each profile saw",
        flag="--profiler-config",
        metavar="JSON",
        read=bool,
    )
    timeout_keep_alive: float = setting(
        5.0,
        "close a keep-alive connection idle S seconds, as vLLM does (VLLM_HTTP_TIMEOUT_KEEP_ALIVE, 5); 0 closes "
        "it after every response, unannounced",
        metavar="S",
    )
    wrong_method_status: int = setting(
        405,
        "the answer to another method on a POST route (a GET of /v1/chat/completions): 405 as FastAPI servers "
        "(vLLM) give, 404 as Go's gin and others do",
        choices=(404, 405),
    )


@dataclass(frozen=True)
class EngineConfig:
    """its engine: batching, step times, the KV cache, output lengths"""

    max_num_seqs: int = setting(256, "as vLLM's: the most sequences running at once")
    max_num_batched_tokens: int = setting(
        2048, "as vLLM's: the tokens one step may compute (decodes, then prefill chunks)"
    )
    step_ms: float = setting(20.0, "decode step time with an empty batch")
    step_ms_per_seq: float = setting(0.15, "step time added per running sequence")
    prefill_ms_per_token: float = setting(0.005, "step time added per prompt token computed in the step")
    block_size: int = setting(16, "as vLLM's: tokens per KV-cache block (prefix hashing)")
    num_blocks: int = setting(200_000, "KV-cache capacity in blocks")
    eos_prob: float = setting(1 / 300, "chance per token of ending early (unless the request sets ignore_eos)")
    max_model_len: int = setting(131072, "as vLLM's: a longer prompt plus max_tokens is refused with 400")
    seed: int = setting(0, "seeds output lengths (--eos-prob) and fault draws")
    enable_prefix_caching: bool = setting(
        True, "reuse cached prompt blocks (vLLM's default); --no-enable-prefix-caching: never", switch=True
    )
    enable_chunked_prefill: bool = setting(
        True,
        "split prefills across steps beside decodes; --no-enable-chunked-prefill: whole prompts in steps of "
        "their own, decoding paused",
        switch=True,
    )


@dataclass(frozen=True)
class FaultConfig:
    """faults it injects"""

    fault: tuple[str, ...] = setting(
        (), f"inject a fault at a rate in [0, 1]; kinds: {', '.join(KINDS)}", metavar="KIND=RATE", many="repeat"
    )
    fault_at_token: int = setting(1, "token index at which mid-stream faults strike")


SECTIONS = (ListenConfig, ServerConfig, EngineConfig, FaultConfig)


def flag_of(f: Field[Any]) -> str:
    return str(f.metadata["flag"] or "--" + f.name.replace("_", "-"))


def default_of(f: Field[Any]) -> Any:
    return f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default


def add_flags(parser: argparse._ActionsContainer, section: type) -> None:
    """One flag per field of ``section`` (a dataclass above)."""
    for f in fields(section):
        meta, default = f.metadata, default_of(f)
        kwargs: dict[str, Any] = {"dest": f.name, "help": meta["help"]}
        if meta["negated"]:
            kwargs.update(dest="not_" + f.name, action="store_true")
        elif meta["switch"]:
            kwargs.update(action=argparse.BooleanOptionalAction, default=default)
        else:
            kwargs.update(default=list(default) if meta["many"] else default, metavar=meta["metavar"])
            if meta["many"] == "repeat":
                kwargs["action"] = "append"
            elif meta["many"] == "list":
                kwargs["nargs"] = "+"
            elif default is not None and meta["read"] is None:
                kwargs["type"] = type(default)
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
        parser.add_argument(flag_of(f), **kwargs)


def from_args(section: type, args: argparse.Namespace) -> Any:
    """``section`` built from parsed flags."""
    values: dict[str, Any] = {}
    for f in fields(section):
        meta = f.metadata
        if meta["negated"]:
            values[f.name] = not getattr(args, "not_" + f.name)
            continue
        value = getattr(args, f.name)
        values[f.name] = meta["read"](value) if meta["read"] else tuple(value) if meta["many"] else value
    return section(**values)
