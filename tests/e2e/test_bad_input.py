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


def test_a_missing_dataset_is_one_line_and_exit_status_2_as_documented():
    run = run_locust(
        "--headless", "-u", "1", "-n", "2", "-H", "http://127.0.0.1:1", "--dataset", "/no/such.jsonl", timeout=60
    )
    # an option value that cannot be used (docs/reference/options.md)
    assert run.returncode == 2
    assert_one_clear_error(run, "--dataset /no/such.jsonl: no such file")


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
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-H",
        "http://127.0.0.1:1",
        "--sweep",
        "rate:1,fast",
        "--level-requests",
        "5",
        timeout=60,
    )
    assert_one_clear_error(run, "--sweep rate: 'fast' is not a number")
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-H",
        "http://127.0.0.1:1",
        "--find-capacity",
        "--level-duration",
        "5",
        "--slo",
        "ttft=5",
        timeout=60,
    )
    assert_one_clear_error(run, "--slo takes ttft_ms=")


@pytest.mark.timeout(60)
def test_a_run_that_ends_before_its_users_are_spawned_says_so(emulator_factory):
    emu = emulator_factory("--step-ms", "5", "--eos-prob", "0")
    args = (
        "--headless",
        "-u",
        "16",
        "-n",
        "40",
        "-H",
        emu.url,
        "--max-tokens",
        "8",
        "--input-tokens",
        "64",
        "--only-summary",
    )
    # Locust's default -r: one user a second, the run over in about 2 s
    slow = run_locust(*args, timeout=50)
    assert slow.returncode == 0 and "Traceback" not in slow.output
    said = [line for line in slow.output.splitlines() if "measured a smaller load than asked" in line]
    assert len(said) == 1 and "of its 16 users" in said[0] and "use -r 16" in said[0], slow.output[-2000:]
    fast = run_locust(*args, "-r", "16", timeout=50)
    assert fast.returncode == 0 and "smaller load than asked" not in fast.output
