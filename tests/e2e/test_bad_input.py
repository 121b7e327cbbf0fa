"""Bad input: one clear line and a non-zero exit, never a traceback (real locust processes)."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from tests.procs import Drain, run_locust


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.match(r"^(locust: )?error: ", line)]


def assert_one_clear_error(run, *fragments: str) -> str:
    assert run.returncode != 0, run
    assert "Traceback" not in run.output, run.output
    lines = error_lines(run.output)
    assert len(lines) == 1, run.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def not_openai_server():
    """A plain static file server: HTTP, but no /v1/models."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    drain = Drain(proc)
    deadline = time.monotonic() + 10
    url = ""
    while not url and time.monotonic() < deadline:
        for line in list(drain.lines):
            m = re.search(r"port (\d+)", line)
            if m:
                url = f"http://127.0.0.1:{m.group(1)}"
        time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(5)


def test_unreachable_host():
    run = run_locust("--headless", "-u", "1", "-n", "1", "-H", "http://127.0.0.1:1", timeout=60)
    assert_one_clear_error(run, "unreachable", "connection refused")


def test_server_that_is_not_openai_compatible(not_openai_server):
    run = run_locust("--headless", "-u", "1", "-n", "1", "-H", not_openai_server, timeout=60)
    assert_one_clear_error(run, "not OpenAI-compatible", "404")


def test_unknown_model(emulator_factory):
    emu = emulator_factory()
    run = run_locust("--headless", "-u", "1", "-n", "1", "-H", emu.url, "--model", "no-such-model", timeout=60)
    assert_one_clear_error(run, "model 'no-such-model' is not served", "emulated-llama")


@pytest.mark.parametrize("n", ["0", "-3"])
def test_zero_or_negative_n(n):
    run = run_locust("--headless", "-u", "1", "-n", n, "-H", "http://127.0.0.1:1", timeout=60)
    assert_one_clear_error(run, "-n/--num-requests must be a positive number")


def test_non_numeric_n():
    run = run_locust("--headless", "-n", "lots", timeout=60)
    assert_one_clear_error(run, "-n/--num-requests", "'lots'")


def test_unwritable_csv_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    run = run_locust(
        "--headless", "-u", "1", "-n", "1", "-H", "http://127.0.0.1:1", "--csv", str(blocker / "x" / "run"), timeout=60
    )
    assert_one_clear_error(run, "--csv", "cannot write CSV files")


def test_malformed_host():
    run = run_locust("--headless", "-u", "1", "-n", "1", "-H", "127.0.0.1:8000", timeout=60)
    assert_one_clear_error(run, "http://HOST:PORT")


def test_a_bad_sweep_is_one_line():
    run = run_locust("--headless", "-u", "1", "-H", "http://127.0.0.1:1", "--sweep", "rate:1,fast",
                     "--level-requests", "5", timeout=60)  # fmt: skip
    assert_one_clear_error(run, "--sweep rate: 'fast' is not a number")
    run = run_locust("--headless", "-u", "1", "-H", "http://127.0.0.1:1", "--find-capacity", "--level-duration", "5",
                     "--slo", "ttft=5", timeout=60)  # fmt: skip
    assert_one_clear_error(run, "--slo takes ttft_ms=")
