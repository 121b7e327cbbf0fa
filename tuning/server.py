"""A server the loop starts for one point, waits for, checks and stops: a local command in a process group
of its own, so nothing it starts outlives the point (or the loop, on Ctrl-C)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Iterator
from urllib.parse import urlsplit

CONFIG_INFO = re.compile(r"^vllm:cache_config_info\{(?P<labels>[^}]*)\}", re.MULTILINE)
LABEL = re.compile(r'(\w+)="([^"]*)"')


class ServerFailed(RuntimeError):
    """The point's server did not start, did not run its settings, or died: the reason and its log's last lines."""


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Launcher:
    """A point's server: started, alive or not, its log's last lines, ready when it answers, stopped."""

    # the point's server.log
    log_path = ""

    def start(self) -> None:
        raise NotImplementedError

    def alive(self) -> bool:
        raise NotImplementedError

    def tail(self, lines: int = 8) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def status(self) -> str:
        """How it ended, said after "the server exited" ("" when it cannot tell)."""
        return ""

    def wait_ready(self, url: str, timeout_s: float) -> dict:
        """Until ``GET /v1/models`` answers with a model: its answer (ServerFailed on exit or timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServerFailed(f"the server exited{self.status()}: {self.tail()}")
            try:
                with urllib.request.urlopen(url.rstrip("/") + "/v1/models", timeout=2) as response:
                    models = json.loads(response.read())
                if models.get("data"):
                    return dict(models)
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise ServerFailed(f"not ready after {timeout_s:g} s (GET /v1/models; its log: {self.log_path}): {self.tail()}")


@contextlib.contextmanager
def interrupt_after() -> Iterator[None]:
    """Hold a Ctrl-C back until the block is done, then raise it: a process started in the block (a server, a
    Locust) is known to its owner, who stops it, rather than left running unknown (Popen is not atomic)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, _frame: caught.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


class LocalServer(Launcher):
    def __init__(self, command: str, log_path: str) -> None:
        self.command = command
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log, interrupt_after():
            self.proc = subprocess.Popen(
                shlex.split(self.command),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> str:
        return f" (status {self.proc.returncode})" if self.proc is not None else ""

    def tail(self, lines: int = 8) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return " | ".join(line.rstrip() for line in deque(f, lines) if line.strip())
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after 30 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def cache_config(url: str) -> dict[str, str]:
    """The labels of the server's ``vllm:cache_config_info`` ({} when it publishes none)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=5) as response:
            text = response.read().decode("utf-8", "replace")
    except OSError:
        return {}
    found = CONFIG_INFO.search(text)
    return dict(LABEL.findall(found.group("labels"))) if found else {}


def mismatches(point: dict, published: dict[str, str]) -> list[str]:
    """The point's settings the server says it does not run (where it publishes them)."""
    out = []
    for key, value in point.items():
        if key in published:
            asked = str(value).lower() if isinstance(value, bool) else str(value)
            if published[key].lower() != asked.lower():
                out.append(f"{key}: the point asks {asked}, the server runs {published[key]}")
    return out


def wait_port_free(url: str, timeout_s: float = 30.0) -> bool:
    parts = urlsplit(url)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=1):
                pass
        except OSError:
            return True
        time.sleep(0.2)
    return False
