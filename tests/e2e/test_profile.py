"""--profile and --profile-level against the emulator's profiler routes (vLLM's, with --profiler-config): the
profile spans exactly the measured requests (not the warm-up), or one level of a sweep; a server without a
profiler is one line before the run."""

from __future__ import annotations

import pytest

from tests.procs import read_rows, run_locust


@pytest.mark.timeout(120)
def test_the_profile_spans_the_measured_part_or_the_chosen_level(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "5", "--profiler-config", '{"profiler": "torch"}')
    run = run_locust(
        "--headless",
        "-u",
        "4",
        "-r",
        "4",
        "-n",
        "20",
        "-H",
        emu.url,
        "--max-tokens",
        "8",
        "--input-tokens",
        "64",
        "--warmup",
        "1",
        "--profile",
        "--only-summary",
    )
    assert run.returncode == 0, run.output[-3000:]
    # the 20 measured, not the warm-up request
    assert emu.stats()["profiles"] == [{"requests": 20}]
    prefix = tmp_path / "sweep"
    swept = run_locust(
        "--headless",
        "-u",
        "1",
        "-H",
        emu.url,
        "--max-tokens",
        "8",
        "--input-tokens",
        "64",
        "--sweep",
        "rate:20,40",
        "--level-requests",
        "12",
        "--profile-level",
        "2",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert swept.returncode == 0, swept.output[-3000:]
    second = [r for r in read_rows(prefix) if r["level"] == "2"]
    assert emu.stats()["profiles"][1:] == [{"requests": len(second)}] and len(second) >= 12
    assert "Traceback" not in run.output + swept.output


@pytest.mark.timeout(60)
def test_a_server_without_a_profiler_is_one_line_before_the_run(emulator_factory):
    emu = emulator_factory()
    run = run_locust("--headless", "-u", "1", "-n", "2", "-H", emu.url, "--profile", timeout=50)
    assert run.returncode == 1 and "Traceback" not in run.output
    assert "has no profiler enabled (no /start_profile): start vLLM with --profiler-config" in run.output
    assert "/v1/chat/completions" not in emu.stats()["by_path"]
