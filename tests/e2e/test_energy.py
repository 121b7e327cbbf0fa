"""--telemetry-url against a fake GPU exporter (DCGM's names) whose power follows a known curve of the wall
clock: the run's energy is the curve's integral over the run's duration within 1%; with --gpu-hour-cost and
--gpus, the cost per million tokens is the arithmetic's."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.e2e.test_sweep import report
from tests.procs import read_rows, run_locust
from tests.unit.reports.test_energy import curve, integral


class FakeDcgm(BaseHTTPRequestHandler):
    """Two GPUs sharing the curve's power now; no energy counter (the report integrates the power)."""

    def do_GET(self) -> None:
        watts = curve(time.time()) / 2
        page = "".join(
            f'DCGM_FI_DEV_POWER_USAGE{{gpu="{g}",UUID="GPU-{g}"}} {watts!r}\n'
            f'DCGM_FI_DEV_GPU_UTIL{{gpu="{g}",UUID="GPU-{g}"}} 80\n'
            for g in (0, 1)
        )
        body = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def exporter():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeDcgm)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


@pytest.mark.timeout(120)
def test_energy_is_the_power_curves_integral_and_the_cost_the_arithmetics(emulator_factory, exporter, tmp_path):
    emu = emulator_factory("--step-ms", "20")
    prefix = tmp_path / "energy"
    run = run_locust(
        "--headless",
        "-u",
        "4",
        "-r",
        "4",
        "-n",
        "48",
        "-H",
        emu.url,
        "--max-tokens",
        "16",
        "--ignore-eos",
        "--input-tokens",
        "128",
        "--telemetry-url",
        exporter,
        "--gpu-hour-cost",
        "2",
        "--gpus",
        "8",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 0, run.output[-3000:]
    assert "Traceback" not in run.output
    summary = report(prefix)
    rows = read_rows(prefix)
    t0 = min(float(r["start_time"]) for r in rows)
    t1 = t0 + summary["duration_s"]
    truth = integral(t0, t1)
    assert summary["energy_j"] == pytest.approx(truth, rel=0.01)
    assert summary["energy_j_bounds"][0] <= summary["energy_j"] <= summary["energy_j_bounds"][1]
    assert summary["mean_gpu_power_w"] == pytest.approx(truth / summary["duration_s"], rel=0.01)
    assert summary["gpu_utilization"] == pytest.approx(0.8)
    assert summary["joules_per_output_token"] == pytest.approx(summary["energy_j"] / (48 * 16))
    # 8 GPUs at 2 USD an hour over the run's duration
    usd = 2 * 8 * summary["duration_s"] / 3600
    assert summary["usd_per_million_output_tokens"] == pytest.approx(usd / (48 * 16) * 1e6)
    tokens = summary["total_output_tokens"] + summary["total_input_tokens"]
    assert summary["usd_per_million_total_tokens"] == pytest.approx(usd / tokens * 1e6)
    assert (tmp_path / "energy_gpu_power.png").stat().st_size > 10_000
