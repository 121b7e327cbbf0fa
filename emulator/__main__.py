"""Run the emulator: ``python -m emulator --port 8000``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys

from emulator.arrival import listener
from emulator.engine import EngineConfig
from emulator.faults import KINDS, FaultPlan
from emulator.server import App, Connection, ServerConfig


def parser() -> argparse.ArgumentParser:
    """The emulator's flags (the docs' reference is built from them)."""
    p = argparse.ArgumentParser(prog="python -m emulator", description="A vLLM-compatible server emulator (no GPU).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed on start)")
    p.add_argument("--model", default="emulated-llama", help="the model name it serves (GET /v1/models)")
    p.add_argument("--reasoning-tokens", type=int, default=0, metavar="N",
                   help="chat: stream each answer's first N tokens as reasoning_content (a reasoning model's, as "
                   "vLLM's reasoning parser sends them)")  # fmt: skip
    p.add_argument(
        "--image-tokens",
        type=int,
        default=256,
        metavar="N",
        help="chat: the prompt tokens each image part costs (a vision model's, counted in the usage)",
    )
    p.add_argument("--lora-modules", nargs="+", default=[], metavar="NAME[=PATH]",
                   help="LoRA adapters served beside the model, as vLLM's flag (the path is not read): each a "
                   "model name of its own, its prefix-cache blocks apart from the base model's")  # fmt: skip
    p.add_argument("--runner", choices=("auto", "generate", "pooling"), default="auto",
                   help="as vLLM's flag: generate serves no /v1/embeddings, pooling only /v1/embeddings (404 for the "
                   "rest, as vLLM answers); auto (the emulator's default) serves both")  # fmt: skip
    p.add_argument("--api-key", default=None, help="require this Bearer token on /v1/*")
    p.add_argument("--max-num-seqs", type=int, default=256, help="as vLLM's: the most sequences running at once")
    p.add_argument("--max-num-batched-tokens", type=int, default=2048,
                   help="as vLLM's: the tokens one step may compute (decodes, then prefill chunks)")  # fmt: skip
    p.add_argument("--step-ms", type=float, default=20.0, help="decode step time with an empty batch")
    p.add_argument("--step-ms-per-seq", type=float, default=0.15, help="step time added per running sequence")
    p.add_argument("--prefill-ms-per-token", type=float, default=0.005,
                   help="step time added per prompt token computed in the step")  # fmt: skip
    p.add_argument("--block-size", type=int, default=16, help="as vLLM's: tokens per KV-cache block (prefix hashing)")
    p.add_argument("--num-blocks", type=int, default=200_000, help="KV-cache capacity in blocks")
    p.add_argument("--eos-prob", type=float, default=1 / 300, help="chance per token of ending early")
    p.add_argument("--max-model-len", type=int, default=131072,
                   help="as vLLM's: a longer prompt plus max_tokens is refused with 400")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seeds output lengths (--eos-prob) and fault draws")
    p.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=True,
                   help="reuse cached prompt blocks (vLLM's default); --no-enable-prefix-caching: never")  # fmt: skip
    p.add_argument("--enable-chunked-prefill", action=argparse.BooleanOptionalAction, default=True,
                   help="split prefills across steps beside decodes; --no-enable-chunked-prefill: whole prompts "
                   "in steps of their own, decoding paused")  # fmt: skip
    p.add_argument("--request-log", default=None, help="append one JSON line of ground truth per request")
    p.add_argument(
        "--no-cached-tokens",
        action="store_true",
        help="omit usage.prompt_tokens_details (as vLLM without --enable-prompt-tokens-details)",
    )
    p.add_argument("--no-tokenize", action="store_true", help="disable POST /tokenize (as some servers lack it)")
    p.add_argument("--no-dev-mode", action="store_true", help="disable POST /reset_prefix_cache")
    p.add_argument("--otlp-traces-endpoint", default="", metavar="URL",
                   help="as vLLM's: send a span per request whose traceparent names a trace, OTLP/HTTP protobuf "
                   "(URL or URL/v1/traces), with gen_ai.latency.* attributes from the emulator's own clock")  # fmt: skip
    p.add_argument("--profiler-config", default="", metavar="JSON",
                   help="as vLLM's: any value serves POST /start_profile and /stop_profile (404 without), and "
                   "/emulator/stats counts the requests each profile saw")  # fmt: skip
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=RATE",
        help=f"inject a fault at a rate in [0, 1]; kinds: {', '.join(KINDS)}",
    )
    p.add_argument("--ssl-certfile", default=None, help="serve https with this certificate (PEM)")
    p.add_argument("--ssl-keyfile", default=None, help="the certificate's private key (PEM)")
    p.add_argument(
        "--timeout-keep-alive",
        type=float,
        default=5.0,
        metavar="S",
        help="close a keep-alive connection idle S seconds, as vLLM does (VLLM_HTTP_TIMEOUT_KEEP_ALIVE, 5); "
        "0 closes it after every response, unannounced",
    )
    p.add_argument("--fault-at-token", type=int, default=1, help="token index at which mid-stream faults strike")
    p.add_argument("--wrong-method-status", type=int, choices=(404, 405), default=405,
                   help="the answer to another method on a POST route (a GET of /v1/chat/completions): 405 as "
                   "FastAPI servers (vLLM) give, 404 as Go's gin and others do")  # fmt: skip
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return parser().parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    faults = FaultPlan.parse(args.fault, args.seed, args.fault_at_token)
    engine_cfg = EngineConfig(
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        step_ms=args.step_ms,
        step_ms_per_seq=args.step_ms_per_seq,
        prefill_ms_per_token=args.prefill_ms_per_token,
        block_size=args.block_size,
        num_blocks=args.num_blocks,
        eos_prob=args.eos_prob,
        max_model_len=args.max_model_len,
        seed=args.seed,
        enable_prefix_caching=args.enable_prefix_caching,
        enable_chunked_prefill=args.enable_chunked_prefill,
    )
    server_cfg = ServerConfig(
        model=args.model,
        lora_modules=tuple(m.split("=", 1)[0] for m in args.lora_modules),
        runner=args.runner,
        reasoning_tokens=args.reasoning_tokens,
        image_tokens=args.image_tokens,
        api_key=args.api_key,
        dev_mode=not args.no_dev_mode,
        profiler=bool(args.profiler_config),
        otlp_traces_endpoint=args.otlp_traces_endpoint,
        request_log=args.request_log,
        include_cached_tokens=not args.no_cached_tokens,
        tokenize=not args.no_tokenize,
        timeout_keep_alive=args.timeout_keep_alive,
        wrong_method_status=args.wrong_method_status,
    )
    app = App(server_cfg, engine_cfg, faults)
    loop = asyncio.get_running_loop()
    tls = None
    if args.ssl_certfile:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.ssl_certfile, args.ssl_keyfile)
    sock = listener(args.host, args.port, backlog=4096)
    server = await loop.create_server(lambda: Connection(app), sock=sock, backlog=4096, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    print(f"emulator ready on {scheme}://{args.host}:{port} model={args.model}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine_task = asyncio.create_task(app.engine.run())
    await stop.wait()
    engine_task.cancel()
    server.close()
    if app.spans is not None:
        app.spans.close()  # the last batch leaves


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        asyncio.run(serve(args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot serve: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
