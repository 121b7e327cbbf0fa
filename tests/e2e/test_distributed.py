"""Master/worker runs with real processes: an exact global -n, rows at the master, worker loss."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections import Counter

import psutil
import pytest

from tests.procs import read_rows, run_locust, start_locust, start_master, wait_for_rows_from

FAST = ("--step-ms", "10", "--step-ms-per-seq", "0.02")


def free_port() -> int:
    """A port free now, for a server that cannot bind port 0 and report it (real vLLM): a small race
    remains; the suite's own processes bind port 0 instead (``tests.procs.start_master``, ``web_port``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cluster(emu, prefix, n, workers=3, kill_one=False, extra=()):
    master, master_out, port = start_master(
        "--headless",
        "--expect-workers",
        str(workers),
        "-u",
        "30",
        "-r",
        "30",
        "-n",
        str(n),
        "-H",
        emu.url,
        "--input-tokens",
        "128",
        "--csv",
        str(prefix),
        "--only-summary",
        *extra,
    )
    procs = [start_locust("--worker", "--master-host", "127.0.0.1", "--master-port", str(port)) for _ in range(workers)]

    # once every worker has shipped rows, one dies mid-run
    def kill_one_mid_run() -> None:
        wait_for_rows_from(prefix, workers)
        # SIGKILL: no goodbye, no final report
        procs[1][0].kill()

    outputs, _ = wait_for_cluster(master, master_out, procs, kill_one_mid_run if kill_one else None)
    return master.returncode, outputs


def wait_for_cluster(master, master_out, procs, meanwhile=None) -> tuple[list[str], float]:
    """Wait for the master (120 s), then for its workers (30 s each), killing whatever is left: the outputs,
    and how long the workers took after the master ended."""
    try:
        if meanwhile is not None:
            meanwhile()
        master.wait(timeout=120)
        ended = time.monotonic()
        for proc, _ in procs:
            proc.wait(timeout=30)
        took = time.monotonic() - ended
    finally:
        for proc, _ in [(master, master_out), *procs]:
            if proc.poll() is None:
                proc.kill()
    master_out.join()
    return [master_out.text] + [d.text for _, d in procs], took


@pytest.mark.timeout(180)
def test_global_n_is_exact_across_three_workers(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    prefix = tmp_path / "dist"
    rc, outputs = run_cluster(emu, prefix, 301, extra=("--max-tokens", "16", "--check", "completed==301"))
    assert rc == 0, outputs[0][-3000:]
    # judged at the master, every row in
    assert "dist: check completed==301: 301: pass" in outputs[0]
    assert all("Traceback" not in out for out in outputs), outputs
    # not 301 per worker
    assert emu.stats()["by_path"]["/v1/chat/completions"] == 301
    rows = read_rows(prefix)
    assert len(rows) == 301 and all(r["success"] == "true" for r in rows)
    by_worker = Counter(r["worker"] for r in rows)
    assert len(by_worker) == 3 and all(n >= 50 for n in by_worker.values()), by_worker
    assert len({r["request_id"] for r in rows}) == 301


@pytest.mark.timeout(180)
def test_killed_worker_keeps_its_rows_and_the_others_finish_the_budget(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "20", "--step-ms-per-seq", "0")
    prefix = tmp_path / "kill"
    rc, outputs = run_cluster(emu, prefix, 200, kill_one=True, extra=("--max-tokens", "32", "--ignore-eos"))
    assert rc == 0, outputs[0][-3000:]
    assert "Traceback" not in outputs[0]
    rows = read_rows(prefix)
    by_worker = Counter(r["worker"] for r in rows)
    # the killed worker's finished rows were kept
    assert len(by_worker) == 3, by_worker
    # its unfinished grants went to the workers that remained
    assert len(rows) == 200
    assert all(r["success"] == "true" for r in rows)
    assert "left with" in outputs[0] and "giving them to the others" in outputs[0]
    # the server saw every row's request (and perhaps the killed worker's unreported ones)
    truth_ids = {t["id"] for t in emu.truth()}
    assert {r["request_id"] for r in rows} <= truth_ids


@pytest.mark.timeout(180)
def test_processes_mode_has_the_same_exact_total(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    prefix = tmp_path / "procs"
    run = run_locust(
        "--processes",
        "2",
        "--headless",
        "-u",
        "20",
        "-r",
        "20",
        "-n",
        "101",
        "-H",
        emu.url,
        "--max-tokens",
        "8",
        "--input-tokens",
        "128",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=150,
    )
    assert run.returncode == 0, run
    assert "Traceback" not in run.output
    assert emu.stats()["by_path"]["/v1/chat/completions"] == 101
    rows = read_rows(prefix)
    assert len(rows) == 101 and len(Counter(r["worker"] for r in rows)) == 2


@pytest.mark.timeout(180)
def test_processes_mode_survives_a_killed_child(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "20", "--step-ms-per-seq", "0")
    prefix = tmp_path / "pk"
    proc, out = start_locust(
        "--processes",
        "2",
        "--headless",
        "-u",
        "20",
        "-r",
        "20",
        "-n",
        "150",
        "-H",
        emu.url,
        "--max-tokens",
        "32",
        "--ignore-eos",
        "--input-tokens",
        "128",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    try:
        deadline = time.monotonic() + 30
        children: list = []
        while len(children) < 2 and time.monotonic() < deadline:
            children = psutil.Process(proc.pid).children()
            time.sleep(0.2)
        assert len(children) == 2
        wait_for_rows_from(prefix, 2)
        os.kill(children[0].pid, signal.SIGKILL)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    out.join()
    assert "Traceback" not in out.text
    rows = read_rows(prefix)
    assert len(rows) == 150, out.text[-3000:]
    assert len(Counter(r["worker"] for r in rows)) == 2


@pytest.mark.timeout(180)
def test_a_worker_killed_in_an_open_loop_loses_only_its_due_arrivals(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "20", "--step-ms-per-seq", "0", "--eos-prob", "0")
    prefix = tmp_path / "open"
    rc, outputs = run_cluster(
        emu, prefix, 240, kill_one=True, extra=("--max-tokens", "8", "--request-rate", "40", "--burstiness", "inf")
    )
    # the run ended by -n, less what the killed worker lost
    assert rc == 0, outputs[0][-3000:]
    assert "Traceback" not in outputs[0]
    rows = read_rows(prefix)
    assert len({r["worker"] for r in rows}) == 3
    left = [line for line in outputs[0].splitlines() if "left:" in line and "arrivals are lost" in line]
    assert len(left) == 1, outputs[0][-3000:]
    lost = int(left[0].split("left: ")[1].split()[0])
    # what fell due on it without a row: its unshipped and in-flight requests, and the arrivals sent to it
    # until the master missed its heartbeats (Locust: about 3 s; 40/3 req/s reach each worker)
    assert 0 <= lost <= 80 and len(rows) == 240 - lost
    # the arrivals not yet due on it went to the others: every scheduled slot but the lost ones was sent
    assert len({r["scheduled_time"] for r in rows}) == 240 - lost


@pytest.mark.timeout(150)
def test_prompts_that_cannot_be_built_on_a_worker_end_the_whole_run_with_one_line(emulator_factory, tmp_path):
    # a worker tells the master, which says it once and ends the run (before, that worker stopped and the
    # run went on to -t)
    from tests.e2e.test_keepalive import kill_the_server_mid_run

    _line, rows = kill_the_server_mid_run(emulator_factory, tmp_path / "gone", "--processes", "2")
    assert len(rows) >= 20 and len({r["worker"] for r in rows}) == 2


@pytest.mark.timeout(180)
def test_repeat_runs_the_workload_k_times_with_exactly_n_rows_each_across_two_workers(emulator_factory, tmp_path):
    emu = emulator_factory(*FAST)
    prefix = tmp_path / "again"
    rc, outputs = run_cluster(emu, prefix, 40, workers=2, extra=("--max-tokens", "8", "--repeat", "3"))
    assert rc == 0, outputs[0][-3000:]
    assert all("Traceback" not in out for out in outputs), outputs
    rows = read_rows(prefix)
    # -n is each repetition's
    assert Counter(r["repeat"] for r in rows) == {"1": 40, "2": 40, "3": 40}
    assert all(r["success"] == "true" for r in rows) and len({r["worker"] for r in rows}) == 2
    assert "level 3: concurrency 30 in flight (repeat 3)" in outputs[0]


@pytest.mark.timeout(120)
def test_a_master_that_ends_on_an_error_takes_its_workers_down_non_zero(emulator_factory, tmp_path):
    # the error comes at the first request, mid ramp-up (-r 1): the master tells its workers, stops the ramp
    # as vLLM serving a generative model: no /v1/embeddings
    emu = emulator_factory("--runner", "generate")
    prefix = tmp_path / "abort"
    master, master_out, port = start_master(
        "--headless",
        "--expect-workers",
        "2",
        "-u",
        "4",
        "-r",
        "1",
        "-n",
        "50",
        "-H",
        emu.url,
        "--endpoint",
        "embeddings",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    workers = [start_locust("--worker", "--master-host", "127.0.0.1", "--master-port", str(port)) for _ in range(2)]
    outputs, took = wait_for_cluster(master, master_out, workers)
    assert master.returncode == 1 and all(proc.returncode == 1 for proc, _ in workers), outputs
    # the workers followed the master out
    assert took < 10, took
    said = [line for line in master_out.text.splitlines() if line.startswith("error: ")]
    assert len(said) == 1 and "has no /v1/embeddings" in said[0], outputs[0][-3000:]
    assert all("Traceback" not in out for out in outputs), outputs
    # every request sent has its row
    assert len(read_rows(prefix)) == emu.stats()["by_path"]["/v1/embeddings"]
