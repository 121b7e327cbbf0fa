"""Real processes for the tests: the emulator and Locust, with drained output and bounded waits."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LOCUST = str(Path(PYTHON).with_name("locust"))


class Drain:
    """Reads a process's combined output on a thread so its pipe never fills."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._run, args=(proc,), daemon=True)
        self._thread.start()

    def _run(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line)

    def join(self, timeout: float = 10) -> None:
        self._thread.join(timeout)

    @property
    def text(self) -> str:
        return "".join(self.lines)


class Emulator:
    """``python -m emulator`` on a free port; ``stop()`` checks it exited cleanly."""

    def __init__(self, tmp: Path, *args: str, ready_timeout: float = 20) -> None:
        self.log_path = tmp / f"emulator-{time.monotonic_ns()}.jsonl"
        cmd = [PYTHON, "-m", "emulator", "--port", "0", "--request-log", str(self.log_path), *args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.drain = Drain(self.proc)
        deadline = time.monotonic() + ready_timeout
        self.url = ""
        while time.monotonic() < deadline and not self.url:
            for line in list(self.drain.lines):
                if line.startswith("emulator ready on "):
                    self.url = line.split()[3]
            if self.proc.poll() is not None:
                raise RuntimeError(f"emulator exited: {self.drain.text}")
            time.sleep(0.02)
        if not self.url:
            self.proc.kill()
            raise RuntimeError(f"emulator not ready: {self.drain.text}")
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.05)

    def get_json(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return r.read().decode()

    def stats(self) -> dict:
        return self.get_json("/emulator/stats")

    def truth(self) -> list[dict]:
        """The emulator's own per-request log."""
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.drain.join()
        out = self.drain.text
        assert "Traceback" not in out, out
        return out


# The client's TTFT minus the emulator's for the same request cannot be negative in truth (the client
# starts its clock before it sends, and reads the first token after the emulator wrote it). Both sides
# convert kernel stamps (unix time) to perf_counter with an error of at most 10 µs each (see
# llmclient/stamps.py and emulator/arrival.py), and a unix time as a float resolves 0.24 µs: the
# measured difference is never below -(2 x 10 + 1) µs.
TTFT_ERROR_FLOOR_S = -21e-6


def ttft_errors(rows: list[dict], truth: list[dict]) -> list[float]:
    """Client TTFT - emulator TTFT for each successful row, sorted."""
    by_id = {t["id"]: t for t in truth}
    return sorted(float(r["ttft_s"]) - by_id[r["request_id"]]["ttft_s"] for r in rows if r["success"] == "true")


def read_rows(prefix) -> list[dict]:
    """The per-request CSV of a run, as dicts."""
    with open(f"{prefix}_requests.csv", newline="") as f:
        return list(csv.DictReader(f))


def by_session(rows: list[dict]) -> dict[str, list[dict]]:
    """A sessions run's rows: each session's in turn order."""
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row["session_id"], []).append(row)
    return {sid: sorted(turns, key=lambda r: int(r["turn"])) for sid, turns in out.items()}


def lru_forgets_after(rows: list[dict], capacity: int, rate: float, block: int) -> float:
    """A two-turn sessions run at ``rate`` sessions/s against an LRU prefix cache of ``capacity`` blocks: after
    how many seconds of think time a session's history is gone, by arithmetic. After a session's first turn,
    each later session adds its first turn's blocks, and each session's second turn moves its own blocks ahead
    and adds its new ones: blocks newer than the session's come at rate x (first + second) per second, and its
    own are evicted once capacity - first of them have come."""
    first = min(int(r["prompt_tokens"]) for r in rows if r["turn"] == "1") // block
    second = min(int(r["prompt_tokens"]) for r in rows if r["turn"] == "2") // block
    return (capacity - first) / (rate * (first + second))


def workers_with_rows(prefix) -> int:
    try:
        return len({r["worker"] for r in read_rows(prefix)})
    except (FileNotFoundError, KeyError):
        return 0


def wait_for_rows_from(prefix, workers: int, timeout: float = 60) -> None:
    """Wait until every worker has shipped at least one row to the master's CSV."""
    deadline = time.monotonic() + timeout
    while workers_with_rows(prefix) < workers and time.monotonic() < deadline:
        time.sleep(0.1)


class Run:
    def __init__(self, returncode: int, output: str) -> None:
        self.returncode = returncode
        self.output = output

    def __repr__(self) -> str:
        return f"Run(rc={self.returncode}, output=...{self.output[-3000:]})"


def default_sigint() -> None:
    """In the child: take SIGINT as Ctrl-C even when this process was started with it ignored
    (a background job of a non-interactive shell ignores SIGINT, and children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def locust_cmd(*args: str, locustfile: str = str(ROOT / "locustfile.py")) -> list[str]:
    return [LOCUST, "-f", locustfile, *args]


def run_locust(*args: str, timeout: float = 180, env: dict | None = None, locustfile: str | None = None) -> Run:
    """Run ``locust`` to completion; fails the test on timeout."""
    full_env = _env(env)
    proc = subprocess.run(
        locust_cmd(*args, locustfile=locustfile or str(ROOT / "locustfile.py")),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
        preexec_fn=default_sigint,
    )
    return Run(proc.returncode, proc.stdout + proc.stderr)


def _env(extra: dict | None) -> dict:
    """The test's environment: no stray API key unless the test sets one."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def start_locust(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, Drain]:
    full_env = _env(env)
    proc = subprocess.Popen(
        locust_cmd(*args),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
        stdin=subprocess.DEVNULL,
        preexec_fn=default_sigint,
    )
    return proc, Drain(proc)


def terminate_all(started: list[tuple[subprocess.Popen, Drain]], timeout: float = 30) -> None:
    """SIGTERM every process still running, then wait for each and its output."""
    for proc, _ in started:
        if proc.poll() is None:
            proc.terminate()
    for proc, drain in started:
        proc.wait(timeout)
        drain.join()


def wait_for_line(out: Drain, pattern: str, timeout: float = 30) -> re.Match[str]:
    """The first line of a process's output that matches, waited for (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, out.text)
        if match:
            return match
        time.sleep(0.05)
    raise AssertionError(f"no line matching {pattern!r} in:\n{out.text[-3000:]}")


def start_master(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, Drain, int]:
    """A master on 127.0.0.1 bound to a port the OS picks (no race for a free one): (proc, output, port)."""
    proc, out = start_locust("--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", "0", *args, env=env)
    try:
        port = int(wait_for_line(out, r"master listening for workers on port (\d+)").group(1))
    except AssertionError:
        proc.kill()
        raise
    return proc, out, port


def web_port(out: Drain) -> int:
    """The port of a web UI started with ``--web-port 0``."""
    return int(wait_for_line(out, r"web UI listening on port (\d+)").group(1))
