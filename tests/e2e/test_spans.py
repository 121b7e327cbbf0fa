"""--trace-context and --otlp-port against the emulator's spans (vLLM's attribute names, from its own clock):
every row carries its trace id, and gets the server's timings from its span, equal to the emulator's truth."""

from __future__ import annotations

import socket

import pytest

from tests.e2e.test_distributed import free_port
from tests.e2e.test_sweep import report
from tests.procs import read_rows, run_locust

COLUMNS = {
    "server_queue_s": "gen_ai.latency.time_in_queue",
    "server_prefill_s": "gen_ai.latency.time_in_model_prefill",
    "server_ttft_s": "gen_ai.latency.time_to_first_token",
    "server_e2e_s": "gen_ai.latency.e2e",
}


@pytest.mark.timeout(120)
def test_every_row_is_joined_to_its_span_and_the_timings_are_the_emulators(emulator_factory, tmp_path):
    port = free_port()
    emu = emulator_factory("--step-ms", "10", "--otlp-traces-endpoint", f"http://127.0.0.1:{port}")
    prefix = tmp_path / "spans"
    run = run_locust(
        "--headless",
        "-u",
        "4",
        "-r",
        "4",
        "-n",
        "40",
        "-H",
        emu.url,
        "--max-tokens",
        "8",
        "--input-tokens",
        "128",
        "--otlp-port",
        str(port),
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 0, run.output[-3000:]
    assert "Traceback" not in run.output and "40 of 40 traced requests joined" in run.output
    rows = read_rows(prefix)
    truth = {t["id"]: t for t in emu.truth() if t.get("id")}
    assert len(rows) == 40 and len({r["trace_id"] for r in rows}) == 40
    for r in rows:
        told = truth[r["request_id"]]
        # its traceparent's trace id
        assert r["trace_id"] == told["trace_id"] and len(r["trace_id"]) == 32
        for column, attribute in COLUMNS.items():
            # the span's value, exactly
            assert float(r[column]) == told["spans"][attribute], column
        # the client's TTFT spans the server's
        assert float(r["ttft_s"]) - float(r["server_ttft_s"]) > -20e-6
    summary = report(prefix)
    assert summary["server_span_requests"] == 40
    assert 0 <= summary["median_client_minus_server_span_ttft_ms"] <= summary["p99_client_minus_server_span_ttft_ms"]
    assert (tmp_path / "spans_client_minus_server_ttft.png").stat().st_size > 10_000


@pytest.mark.timeout(60)
def test_an_otlp_port_already_taken_is_one_line(emulator_factory):
    emu = emulator_factory()
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = run_locust("--headless", "-u", "1", "-n", "2", "-H", emu.url, "--otlp-port", str(port), timeout=50)
    assert run.returncode == 2 and "Traceback" not in run.output
    assert f"--otlp-port {port}: cannot listen there (Address already in use)" in run.output
