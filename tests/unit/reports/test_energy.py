"""GPU telemetry and cost: the exporters' pages read by their documented names, energy from a known power
curve and from an energy counter, and the cost arithmetic worked by hand."""

from __future__ import annotations

import math
import socket

import pandas as pd
import pytest

from llmclient.telemetry import GpuTelemetry, gpu_sample, telemetry_page
from reports.energy import cost_figures, energy_between, energy_figures

DCGM = """# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-a",modelName="NVIDIA H100 80GB HBM3"} 301.5
DCGM_FI_DEV_POWER_USAGE{gpu="1",UUID="GPU-b",modelName="NVIDIA H100 80GB HBM3"} 298.5
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0",UUID="GPU-a"} 5000000
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="1",UUID="GPU-b"} 7000000
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a"} 90
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-b"} 70
"""
AMD = """# TYPE amd_gpu_package_power gauge
amd_gpu_package_power{gpu_id="0",serial_number="x"} 550
amd_gpu_package_power{gpu_id="1",serial_number="y"} 450
amd_gpu_gfx_activity{gpu_id="0"} 100
amd_gpu_gfx_activity{gpu_id="1"} 50
"""


def test_the_exporters_pages_by_their_documented_names_and_units():
    assert gpu_sample(DCGM) == {
        "exporter": "dcgm",
        "gpus": 2,
        "gpu_power_w": 600.0,
        "gpu_energy_j": 12000.0,
        # mJ to J, % to a share
        "gpu_utilization": 0.8,
    }
    assert gpu_sample(AMD) == {
        "exporter": "amd",
        "gpus": 2,
        "gpu_power_w": 1000.0,
        "gpu_energy_j": None,
        "gpu_utilization": 0.75,
    }
    # µJ, no prefix
    amd_energy = 'gpu_power_usage{gpu_id="0"} 500\ngpu_energy_consumed{gpu_id="0"} 2.5e9\n'
    assert gpu_sample(amd_energy)["gpu_energy_j"] == pytest.approx(2500.0)  # type: ignore[index]
    assert gpu_sample("vllm:num_requests_running 3\n") is None
    assert telemetry_page("http://127.0.0.1:9400/metrics")[1] == "/metrics"
    with pytest.raises(ValueError, match=r"takes an exporter.s page"):
        telemetry_page("127.0.0.1:9400")


# a power curve with a known integral
def curve(t: float) -> float:
    return 400.0 + 200.0 * math.sin(2 * math.pi * t / 30.0)


def integral(t0: float, t1: float) -> float:
    k = 2 * math.pi / 30.0
    return 400.0 * (t1 - t0) + 200.0 / k * (math.cos(k * t0) - math.cos(k * t1))


def test_power_integrated_between_scrapes_is_within_1_percent_of_the_curves_integral_and_bracketed():
    # scraped every second for a minute
    times = [1000.0 + 1.0 * i for i in range(61)]
    samples = pd.DataFrame(
        {
            "time": times,
            "url": "u",
            "gpu_power_w": [curve(t) for t in times],
            "gpu_energy_j": math.nan,
            "gpu_utilization": 0.5,
        }
    )
    # the run's span falls between scrapes
    t0, t1 = 1003.4, 1047.7
    got = energy_figures(samples, t0, t1, output_tokens=1000)
    truth = integral(t0, t1)
    assert got["energy_j"] == pytest.approx(truth, rel=0.01)
    low, high = got["energy_j_bounds"]  # type: ignore[misc]
    assert low <= truth <= high
    assert got["mean_gpu_power_w"] == pytest.approx(truth / (t1 - t0), rel=0.01)
    assert got["joules_per_output_token"] == pytest.approx(got["energy_j"] / 1000)  # type: ignore[operator]
    assert got["gpu_utilization"] == 0.5 and got["gpu_energy_source"] == "power integrated"


def test_an_energy_counter_gives_the_energy_where_an_exporter_has_one():
    times = [0.0, 1.0, 2.0, 3.0]
    two = pd.DataFrame(
        {
            "time": times * 2,
            "url": ["a"] * 4 + ["b"] * 4,
            "gpu_power_w": 999.0,
            "gpu_energy_j": [0, 500, 1000, 1500, 10, 310, 610, 910],
            "gpu_utilization": math.nan,
        }
    )
    got = energy_between(two, 0.5, 2.5)
    # both exporters' counters, read at the span's ends
    assert got["energy_j"] == pytest.approx(1000 + 600)
    assert got["mean_gpu_power_w"] == pytest.approx(800.0) and got["gpu_utilization"] is None
    assert got["gpu_energy_source"] == "energy counter" and "energy_j_bounds" not in got
    # no scrape covers the span
    assert energy_between(two, 10.0, 20.0) == {}


def test_the_cost_per_million_tokens_worked_by_hand():
    # 8 GPUs at 2.50 USD an hour for 90 s: 8 * 2.5 * 90 / 3600 = 0.50 USD
    got = cost_figures(2.5, 8, 90.0, output_tokens=50_000, input_tokens=150_000)
    assert got == pytest.approx(
        {"run_cost_usd": 0.5, "usd_per_million_output_tokens": 10.0, "usd_per_million_total_tokens": 2.5}
    )
    assert cost_figures(None, 8, 90.0, 1, 1) == {} and cost_figures(2.5, None, 90.0, 1, 1) == {}


def test_an_exporter_that_cannot_be_reached_is_one_warning_and_no_rows(tmp_path, caplog):
    # a port nothing listens on
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/metrics"
    telemetry = GpuTelemetry([url], str(tmp_path / "t.csv"))
    for _ in range(3):
        telemetry.scrape()
    telemetry.close()
    warnings = [r.getMessage() for r in caplog.records if "could not scrape the GPU exporter" in r.getMessage()]
    assert len(warnings) == 1 and url in warnings[0] and not (tmp_path / "t.csv").exists()
