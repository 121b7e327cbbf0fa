"""Two replicas behind one run (-H a,b): requests spread as --host-strategy says, each row names its host,
the report breaks the figures down per host and per replica (their own /metrics), with the skew."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.procs import ROOT, read_rows, run_locust

LOAD = ("--input-tokens", "64", "--max-tokens", "8", "--ignore-eos", "--metrics-interval", "1", "--only-summary")


def report(prefix) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "reports", str(prefix)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(open(f"{prefix}_summary.json").read())


@pytest.mark.timeout(180)
def test_round_robin_splits_evenly_and_each_hosts_figures_are_its_emulators(emulator_factory, tmp_path):
    fast, slow = emulator_factory("--step-ms", "3"), emulator_factory("--step-ms", "12")
    prefix = tmp_path / "rr"
    run = run_locust(
        "--headless", "-u", "2", "-r", "2", "-n", "40", "-H", f"{fast.url},{slow.url}", *LOAD, "--csv", str(prefix)
    )
    assert run.returncode == 0, run
    rows = read_rows(prefix)
    for emu in (fast, slow):
        mine = [r for r in rows if r["host"] == emu.url]
        truth = {t["id"]: t for t in emu.truth()}
        assert len(mine) == 20 == len(truth) and all(r["request_id"] in truth for r in mine)
    summary = report(prefix)
    for emu in (fast, slow):
        truth = emu.truth()
        host = summary["hosts"][emu.url]
        assert host["completed"] == 20
        # the client's TTFT of a host's requests against that emulator's own: never below it (21 us: the
        # stamps' conversion error)
        assert host["mean_ttft_ms"] >= np.mean([t["ttft_s"] for t in truth]) * 1e3 - 0.021
        replica = summary["replicas"][emu.url]
        assert replica["server_requests"] == 20
        assert replica["server_mean_ttft_ms"] == pytest.approx(np.mean([t["ttft_s"] for t in truth]) * 1e3, rel=1e-6)
    assert summary["replica_skew"]["load"] == pytest.approx(1.0)
    # the run's own server figures: the replicas summed
    assert summary["server_requests"] == 40
    html = (tmp_path / "rr_report.html").read_text()
    assert "Per host (-H)" in html and "Per replica (/metrics)" in html


@pytest.mark.timeout(180)
def test_least_inflight_sends_more_to_the_replica_that_keeps_up(emulator_factory, tmp_path):
    fast, slow = emulator_factory("--step-ms", "2"), emulator_factory("--step-ms", "60")
    prefix = tmp_path / "least"
    run = run_locust(
        "--headless",
        "-u",
        "4",
        "-r",
        "4",
        "-n",
        "60",
        "-H",
        f"{slow.url},{fast.url}",
        "--host-strategy",
        "least-inflight",
        *LOAD,
        "--csv",
        str(prefix),
    )
    assert run.returncode == 0, run
    rows = read_rows(prefix)
    counts = {emu.url: sum(r["host"] == emu.url for r in rows) for emu in (fast, slow)}
    # the slow replica holds its requests 30 times longer: at most the users' share sits there at a time
    assert counts[fast.url] > 3 * counts[slow.url] and sum(counts.values()) == 60
    assert counts[slow.url] == len(slow.truth())


@pytest.mark.timeout(120)
def test_metrics_urls_name_the_replicas_to_scrape(emulator_factory, tmp_path):
    used, other = emulator_factory(), emulator_factory()
    prefix = tmp_path / "urls"
    # the discard port: nothing answers there
    dead = "http://127.0.0.1:9"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-n",
        "6",
        "-H",
        used.url,
        "--metrics-url",
        f"{used.url}/metrics",
        "--metrics-url",
        other.url,
        "--metrics-url",
        dead,
        *LOAD,
        "--csv",
        str(prefix),
    )
    assert run.returncode == 0, run
    # once
    assert run.output.count(f"could not scrape {dead}/metrics") == 1 and "Traceback" not in run.output
    summary = report(prefix)
    assert summary["replicas"][used.url]["server_requests"] == 6
    assert summary["replicas"][other.url]["server_requests"] == 0
    # a replica that never answered has no figures
    assert "server_requests" not in summary["replicas"][dead]
    assert {r["host"] for r in read_rows(prefix)} == {used.url}


def test_a_bad_host_among_several_is_one_line(emulator_factory):
    emu = emulator_factory()
    run = run_locust("--headless", "-u", "1", "-n", "2", "-H", f"{emu.url},127.0.0.1:9", timeout=60)
    assert run.returncode != 0 and "host must look like http://HOST:PORT" in run.output
    assert "Traceback" not in run.output


@pytest.mark.timeout(120)
def test_an_open_loop_spreads_its_arrivals_too(emulator_factory, tmp_path):
    a, b = emulator_factory(), emulator_factory()
    prefix = tmp_path / "open"
    run = run_locust(
        "--headless",
        "-u",
        "1",
        "-n",
        "20",
        "--request-rate",
        "20",
        "-H",
        f"{a.url},{b.url}",
        *LOAD,
        "--csv",
        str(prefix),
    )
    assert run.returncode == 0, run
    rows = read_rows(prefix)
    assert sorted(r["host"] for r in rows) == sorted([a.url] * 10 + [b.url] * 10)
    assert len(a.truth()) == len(b.truth()) == 10
