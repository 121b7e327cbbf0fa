"""Ctrl-C and SIGTERM: in-flight requests are kept as cancelled, files end on whole lines."""

from __future__ import annotations

import csv
import signal
import time

import pytest

from tests.procs import start_locust, start_master

SLOW = ("--step-ms", "50", "--step-ms-per-seq", "0", "--eos-prob", "0")
LOAD = ("--max-tokens", "40", "--input-tokens", "64")


def check_whole_lines(path) -> list[dict]:
    text = path.read_text()
    assert text.endswith("\n")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    assert all(len(r) == len(header) for r in rows)
    return [dict(zip(header, r, strict=True)) for r in rows]


def wait_for_rows(path, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") > n:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} rows in {path}")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_local_run_interrupted(emulator_factory, tmp_path, sig):
    emu = emulator_factory(*SLOW)
    prefix = tmp_path / "int"
    proc, out = start_locust(
        "--headless", "-u", "6", "-r", "6", "-H", emu.url, *LOAD, "--csv", str(prefix), "--only-summary"
    )
    wait_for_rows(tmp_path / "int_requests.csv", 6)
    time.sleep(0.5)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    out.join()
    assert "Traceback" not in out.text
    # cancelled requests are not failures
    assert proc.returncode == 0, out.text[-2000:]
    rows = check_whole_lines(tmp_path / "int_requests.csv")
    # nothing lost
    assert len(rows) == emu.stats()["by_path"]["/v1/chat/completions"]
    cancelled = [r for r in rows if r["cancelled"] == "true"]
    assert 1 <= len(cancelled) <= 6
    assert all(r["success"] == "true" for r in rows if r not in cancelled)
    check_whole_lines(tmp_path / "int_stats.csv")


@pytest.mark.timeout(150)
def test_distributed_master_interrupted(emulator_factory, tmp_path):
    emu = emulator_factory(*SLOW)
    prefix = tmp_path / "dint"
    master, mout, port = start_master(
        "--headless",
        "--expect-workers",
        "2",
        "-u",
        "8",
        "-r",
        "8",
        "-H",
        emu.url,
        *LOAD,
        "--csv",
        str(prefix),
        "--only-summary",
    )
    workers = [start_locust("--worker", "--master-host", "127.0.0.1", "--master-port", str(port)) for _ in range(2)]
    try:
        wait_for_rows(tmp_path / "dint_requests.csv", 8, timeout=60)
        time.sleep(0.5)
        master.send_signal(signal.SIGINT)
        master.wait(timeout=90)
        for w, _ in workers:
            w.wait(timeout=60)
    finally:
        for p, _ in [(master, mout), *workers]:
            if p.poll() is None:
                p.kill()
    mout.join()
    assert "Traceback" not in mout.text and all("Traceback" not in d.text for _, d in workers)
    rows = check_whole_lines(tmp_path / "dint_requests.csv")
    # the workers' last rows arrived
    assert len(rows) == emu.stats()["by_path"]["/v1/chat/completions"]
    assert any(r["cancelled"] == "true" for r in rows)
    assert len({r["worker"] for r in rows}) == 2
