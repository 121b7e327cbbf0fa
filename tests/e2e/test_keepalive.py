"""Servers close idle keep-alive connections (vLLM after 5 s): runs against an emulator that does so finish
clean, on every kind of connection the suite keeps; and a run whose prompts can no longer be built ends
with one line."""

from __future__ import annotations

import signal
import time

import pytest

from llmclient.control import ServerTokenizer
from llmclient.http import Target
from tests.e2e.test_bad_input import assert_one_clear_error
from tests.procs import read_rows, run_locust, start_locust

# 20 tokens: a 2-second stream
SLOW = ("--step-ms", "100", "--step-ms-per-seq", "0", "--eos-prob", "0")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("keep_alive", ["1", "0"], ids=["idle-1s", "close-after-each"])
def test_a_slow_closed_loop_outlives_the_servers_keepalive_timeout(emulator_factory, tmp_path, keep_alive):
    # streams of 2 s: the scrape connection (interval longer than the run) and the prompt counter's sit idle
    # far past the server's timeout; with 0 the server closes every connection after its response, unannounced
    emu = emulator_factory(*SLOW, "--timeout-keep-alive", keep_alive)
    prefix = tmp_path / "ka"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-n",
        "6",
        "-H",
        emu.url,
        "--max-tokens",
        "20",
        "--input-tokens",
        "96",
        "--metrics-interval",
        "600",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=120,
    )
    assert run.returncode == 0, run.output
    assert "Traceback" not in run.output and "error" not in run.output.lower(), run.output
    rows = read_rows(prefix)
    assert len(rows) == 6 and all(r["success"] == "true" for r in rows)
    assert all(int(r["prompt_tokens"]) == 96 for r in rows)
    stats = emu.stats()
    # none lost, none sent twice
    assert stats["by_path"]["/v1/chat/completions"] == 6
    if keep_alive == "1":
        # the server did close idle connections under the run (the scrape's)
        assert stats["idle_closed"] >= 1
    scrapes = (tmp_path / "ka_server_metrics.csv").read_text().splitlines()
    # a header, the first scrape and the last, on a connection idle for the whole run
    assert len(scrapes) >= 3


@pytest.mark.timeout(120)
def test_an_open_loop_at_a_low_rate_never_sends_on_a_connection_the_server_closed(emulator_factory, tmp_path):
    # 1.5 s between arrivals against a 1 s keep-alive timeout: every spare connection kept ready goes stale
    emu = emulator_factory("--step-ms", "5", "--step-ms-per-seq", "0", "--timeout-keep-alive", "1")
    prefix = tmp_path / "ol"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-n",
        "5",
        "-H",
        emu.url,
        "--request-rate",
        "0.667",
        "--burstiness",
        "inf",
        "--max-tokens",
        "4",
        "--input-tokens",
        "64",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=90,
    )
    assert run.returncode == 0, run.output
    rows = read_rows(prefix)
    assert len(rows) == 5 and all(r["success"] == "true" for r in rows), [r["error"] for r in rows]
    assert emu.stats()["by_path"]["/v1/chat/completions"] == 5
    assert emu.stats()["idle_closed"] >= 4


def test_the_prompt_counter_reuses_its_connection_only_while_the_server_keeps_it(emulator_factory):
    emu = emulator_factory("--timeout-keep-alive", "0.2")
    counter = ServerTokenizer(Target.parse(emu.url), "emulated-llama", {})
    first = counter.count("the cache keeps shared prefixes warm", True)
    # the server has closed the idle connection
    time.sleep(1.0)
    assert counter.count("the cache keeps shared prefixes warm", True) == first
    stats = emu.stats()
    assert stats["by_path"]["/tokenize"] == 2 and stats["idle_closed"] >= 1
    counter.close()


def kill_the_server_mid_run(emulator_factory, prefix, *locust_args: str) -> tuple[str, list[dict]]:
    """A run whose server goes away once 20 requests completed: requests fail as rows, and once the prebuilt
    prompts are spent the next one cannot be counted. The one error line (and no traceback, status 1), and
    the rows."""
    emu = emulator_factory("--step-ms", "2", "--step-ms-per-seq", "0")
    proc, out = start_locust(
        *locust_args,
        "--headless",
        "-u",
        "4",
        "-r",
        "4",
        "-t",
        "120s",
        "-H",
        emu.url,
        "--max-tokens",
        "2",
        "--input-tokens",
        "32",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and emu.stats()["completed"] < 20:
        time.sleep(0.1)
    emu.proc.send_signal(signal.SIGKILL)
    emu.proc.wait(10)
    # by itself, long before -t
    proc.wait(90)
    out.join()

    class Run:
        returncode = proc.returncode
        output = out.text

    line = assert_one_clear_error(Run, "prompts cannot be built", "cannot count tokens")
    assert proc.returncode == 1, line
    return line, read_rows(prefix)


@pytest.mark.timeout(150)
def test_prompts_that_cannot_be_built_mid_run_end_the_run_with_one_line(emulator_factory, tmp_path):
    _line, rows = kill_the_server_mid_run(emulator_factory, tmp_path / "gone")
    # every request sent has its row
    assert len(rows) >= 20 and rows[-1]["success"] in ("true", "false")
