"""Run the emulator: ``python -m emulator --port 8000``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys

from emulator.arrival import listener
from emulator.config import SECTIONS, EngineConfig, FaultConfig, ListenConfig, ServerConfig, add_flags, from_args
from emulator.faults import FaultPlan
from emulator.http import Connection
from emulator.server import App


def parser() -> argparse.ArgumentParser:
    """The emulator's flags, one per field of its configuration (config.py); the docs' reference too."""
    p = argparse.ArgumentParser(
        prog="python -m emulator",
        description="A vLLM-compatible server emulator (no GPU).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for section in SECTIONS:
        add_flags(p.add_argument_group(section.__doc__), section)
    return p


async def serve(listen: ListenConfig, app: App) -> None:
    """Serve ``app`` until SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    tls = None
    if listen.ssl_certfile:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(listen.ssl_certfile, listen.ssl_keyfile)
    sock = listener(listen.host, listen.port, backlog=4096)
    server = await loop.create_server(lambda: Connection(app), sock=sock, backlog=4096, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    print(f"emulator ready on {scheme}://{listen.host}:{port} model={app.cfg.model}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine_task = asyncio.create_task(app.engine.run())
    await stop.wait()
    engine_task.cancel()
    server.close()
    if app.spans is not None:
        # the last batch leaves
        app.spans.close()


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        engine, faults = from_args(EngineConfig, args), from_args(FaultConfig, args)
        plan = FaultPlan.parse(list(faults.fault), engine.seed, faults.fault_at_token)
        app = App(from_args(ServerConfig, args), engine, plan)
        asyncio.run(serve(from_args(ListenConfig, args), app))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot serve: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
