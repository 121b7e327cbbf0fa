"""The one harness: our emulator on an ephemeral port, its per-request log as the truth, and headless
``locust`` runs of this suite against it. Used by ``--calibrate`` (``python -m users.calibrate``) and by
every benchmark under ``bench/``; the emulator is a process of its own and shares no code with us."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = sys.executable
LOCUST = os.path.join(os.path.dirname(PY), "locust")
# a step costs only --step-ms: no per-stream or prefill cost, no batch limit, no early end of sequence
FAST_EMULATOR = [
    "--step-ms-per-seq",
    "0",
    "--prefill-ms-per-token",
    "0",
    "--max-num-seqs",
    "4096",
    "--max-num-batched-tokens",
    "10000000",
    "--eos-prob",
    "0",
]
# pinned: the emulator to one core, the client to the other
EMULATOR_CORE, CLIENT_CORE = 1, 0


def pinned(core: int) -> Callable[[], None]:
    """A ``preexec_fn`` that pins the child to one core (when the machine has more than one)."""

    def pin() -> None:
        # a background shell may have left it ignored
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        cores = os.sched_getaffinity(0)
        if len(cores) > 1 or core in cores:
            os.sched_setaffinity(0, {core % (os.cpu_count() or 1)})

    return pin


def clean_env() -> dict[str, str]:
    """This environment without ``LOCUST_*``: a harness run takes only the options it is given."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}


class Harness:
    """An emulator started with ``emulator_args`` (its log under ``workdir``, named by ``tag``); ``run`` or
    ``start`` a headless locust against it with CSVs at ``prefix``; ``truth()`` reads the emulator's log."""

    def __init__(self, workdir: str, tag: str, emulator_args: list[str], pin: bool = False) -> None:
        self.log = os.path.join(workdir, f"emu-{tag}.jsonl")
        self.prefix = os.path.join(workdir, tag)
        self.pin = pin
        self.emulator = subprocess.Popen(
            [PY, "-m", "emulator", "--port", "0", "--request-log", self.log, *emulator_args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            stdin=subprocess.DEVNULL,
            preexec_fn=pinned(EMULATOR_CORE) if pin else None,
        )
        assert self.emulator.stdout is not None
        first = self.emulator.stdout.readline().split()
        if len(first) < 4 or first[0] != "emulator":
            self.close()
            raise RuntimeError(f"the emulator did not start: {' '.join(first) or 'no output'}")
        self.url = first[3]
        threading.Thread(target=self.emulator.stdout.read, daemon=True).start()

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def command(self, locust_args: list[str], prefix: str | None = None) -> list[str]:
        return [
            LOCUST,
            "-f",
            os.path.join(ROOT, "locustfile.py"),
            "--headless",
            "-H",
            self.url,
            "--csv",
            prefix or self.prefix,
            "--only-summary",
            "--loglevel",
            "WARNING",
            *locust_args,
        ]

    def _popen_args(self) -> dict[str, Any]:
        return {
            "cwd": ROOT,
            "text": True,
            "stdin": subprocess.DEVNULL,
            "env": clean_env(),
            "preexec_fn": pinned(CLIENT_CORE) if self.pin else None,
        }

    def run(self, locust_args: list[str], timeout: float, prefix: str | None = None) -> None:
        """A locust run to its end (CSVs at ``prefix``, by default the harness's); raises RuntimeError with its
        last line when it failed."""
        client = subprocess.run(
            self.command(locust_args, prefix), capture_output=True, timeout=timeout, **self._popen_args()
        )
        if client.returncode != 0:
            last = (client.stderr or client.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"locust failed (exit status {client.returncode}): {last[0]}")

    def start(self, locust_args: list[str]) -> subprocess.Popen[str]:
        """A locust run left going (its output drained); the caller stops it (``stop``)."""
        client = subprocess.Popen(
            self.command(locust_args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **self._popen_args()
        )
        threading.Thread(target=client.stdout.read, daemon=True).start()  # type: ignore[union-attr]
        return client

    def truth(self) -> dict[str, dict[str, Any]]:
        """The emulator's per-request log, by request id (read after ``close``, or once the requests ended)."""
        truth = {}
        with open(self.log, encoding="utf-8") as f:
            for line in f:
                t = json.loads(line)
                truth[t["id"]] = t
        return truth

    def close(self) -> None:
        stop(self.emulator, signal.SIGTERM, 30)


def stop(proc: subprocess.Popen[str], how: signal.Signals, grace: float) -> None:
    """Signal a process and wait for it; killed after ``grace`` seconds (never left to disturb the next run)."""
    if proc.poll() is None:
        proc.send_signal(how)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
