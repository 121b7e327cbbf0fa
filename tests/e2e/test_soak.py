"""A soak run: about five minutes, 64 users, faults on; Locust's memory stays flat and nothing is lost.

SOAK_SECONDS sets the length (default 300).
"""

from __future__ import annotations

import csv
import os
import signal
import statistics
import time

import psutil
import pytest

from tests.procs import start_locust

SECONDS = float(os.environ.get("SOAK_SECONDS", "300"))
FAULTS = (
    "http_500=0.01",
    "http_429=0.01",
    "reset=0.01",
    "malformed=0.01",
    "error_frame=0.01",
    "no_done=0.01",
    "empty=0.01",
    "refuse=0.01",
)


@pytest.mark.soak
@pytest.mark.timeout(SECONDS + 180)
def test_soak_memory_stays_flat(emulator_factory, tmp_path):
    emu = emulator_factory(
        "--step-ms", "20", "--step-ms-per-seq", "0.05", *[arg for f in FAULTS for arg in ("--fault", f)]
    )
    prefix = tmp_path / "soak"
    proc, out = start_locust(
        "--headless",
        "-u",
        "64",
        "-r",
        "32",
        "-H",
        emu.url,
        "--max-tokens",
        "48",
        "--input-tokens",
        "512",
        "--prefix-tokens",
        "256",
        "--prefix-groups",
        "4",
        "--stream-timeout",
        "5",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    try:
        p = psutil.Process(proc.pid)
        while time.monotonic() - started < SECONDS:
            time.sleep(2.0)
            assert proc.poll() is None, out.text[-3000:]
            samples.append((time.monotonic() - started, p.memory_info().rss / 2**20))
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    out.join()
    assert "Traceback" not in out.text
    with open(f"{prefix}_requests.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    stats = emu.stats()
    injected = stats["faults_injected"]
    # nothing lost, faults and all: each request the server received has its row, and a refusal on a kept
    # connection, sent once more on a new one, says so on its row: receipts are the rows plus the resent
    resent = sum(r["resent"] == "1" for r in rows)
    assert stats["by_path"]["/v1/chat/completions"] == len(rows) + resent, (resent, injected)
    assert resent <= injected.get("refuse", 0)
    assert sum(injected.values()) > 0
    failed = sum(r["success"] == "false" and r["cancelled"] != "true" for r in rows)
    # less those in flight when the run stopped
    assert failed >= sum(injected.values()) - resent - 64
    # flat: after the first fifth (start-up, prompt pool, caches), RSS may not keep growing
    settled = [m for t, m in samples if t > SECONDS / 5]
    third = max(len(settled) // 3, 1)
    early, late = statistics.median(settled[:third]), statistics.median(settled[-third:])
    print(f"soak: {len(rows)} requests, RSS early {early:.1f} MiB, late {late:.1f} MiB, max {max(settled):.1f} MiB")
    assert late - early < max(16.0, 0.10 * early), (early, late)
