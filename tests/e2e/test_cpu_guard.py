"""The client's CPU guard, end to end: a client that burns its core says so (a line, the report, the
server-metrics column); a quickstart-sized run does not."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from llmclient.cpu import BOTTLENECK
from tests.procs import ROOT, run_locust

BUSY_USER = '''
import time
import sys
from locust import task

sys.path.insert(0, {root!r})

from users.base import LLMUser
from users.plugin import install

install()


class BusyUser(LLMUser):
    """Works its core between requests: a client that cannot keep up."""

    @task
    def ask(self):
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            pass
        self.client.completion("Say something.", max_tokens=4)
'''


@pytest.mark.timeout(120)
def test_a_client_that_burns_its_core_is_called_the_bottleneck(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "2")
    locustfile = tmp_path / "busy.py"
    locustfile.write_text(BUSY_USER.format(root=str(ROOT)))
    prefix = tmp_path / "busy"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-r",
        "1",
        "-t",
        "6s",
        "-H",
        emu.url,
        "--metrics-interval",
        "1",
        "--csv",
        str(prefix),
        "--only-summary",
        locustfile=str(locustfile),
    )
    assert run.returncode == 0, run
    assert BOTTLENECK in run.output and "Traceback" not in run.output
    verdict = json.loads((tmp_path / "busy_client_cpu.json").read_text())
    assert verdict["client_cpu_bound"] is True and verdict["client_cpu_max_share"] > 0.9
    with open(f"{prefix}_server_metrics.csv", newline="") as f:
        shares = [float(r["client_cpu_share"]) for r in csv.DictReader(f) if r["client_cpu_share"]]
    assert shares and max(shares) > 0.9
    proc = subprocess.run(
        [sys.executable, "-m", "reports", str(prefix)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "busy_summary.json").read_text())
    assert summary["client_cpu_bound"] is True
    assert "The client was the bottleneck" in (tmp_path / "busy_report.html").read_text()


@pytest.mark.timeout(120)
def test_a_quickstart_sized_run_is_not(emulator_factory, tmp_path):
    emu = emulator_factory()
    prefix = tmp_path / "calm"
    run = run_locust(
        "--headless",
        "-u",
        "32",
        "-r",
        "16",
        "-n",
        "96",
        "-H",
        emu.url,
        "--input-tokens",
        "512",
        "--prefix-tokens",
        "384",
        "--prefix-groups",
        "4",
        "--max-tokens",
        "32",
        "--metrics-interval",
        "1",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 0, run
    assert BOTTLENECK not in run.output
    verdict = json.loads((tmp_path / "calm_client_cpu.json").read_text())
    assert verdict["client_cpu_bound"] is False and verdict["processes"]["local"]["seconds"] > 0
