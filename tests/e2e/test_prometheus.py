"""``GET /metrics``: the suite's figures for Prometheus, scraped during and after real runs."""

from __future__ import annotations

import json
import time
import urllib.request
from subprocess import Popen

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_tls_and_secrets import KEY
from tests.procs import Drain, read_rows, start_locust, start_master, terminate_all, wait_for_line

N = 60
LOAD = ("-u", "4", "-r", "4", "-n", str(N), "--max-tokens", "32", "--input-tokens", "64")


def start_cluster(workers: int, *master_args: str, worker_args: tuple[str, ...] = ()) -> list[tuple[Popen, Drain]]:
    """A master on 127.0.0.1 (web UI and figures there too) and its workers: [master, *workers]."""
    master, out, port = start_master("--expect-workers", str(workers), "--web-host", "127.0.0.1", *master_args)
    return [
        (master, out),
        *(
            start_locust("--worker", "--master-host", "127.0.0.1", "--master-port", str(port), *worker_args)
            for _ in range(workers)
        ),
    ]


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Each sample's value by name and labels, as prometheus_client's parser reads the page."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for key, v in samples.get(name, {}).items() if all((k, labels[k]) in key for k in labels))


def rows_on_disk(prefix) -> list[dict]:
    try:
        return read_rows(prefix)
    except FileNotFoundError:
        return []


def wait_for_rows(prefix, n: int, timeout: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout
    rows = rows_on_disk(prefix)
    while len(rows) < n and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = rows_on_disk(prefix)
    assert len(rows) == n, f"{len(rows)} rows of {n}"
    return rows


def check_during_and_after(url: str, prefix) -> dict:
    """A scrape mid-run counts between the rows on disk before it and the run's total; once every
    row is written, the counts equal the rows exactly."""
    assert all(name.startswith("llm_loadtest_") for name in scrape(url))
    mid_checked = False
    while not mid_checked:
        before = len(rows_on_disk(prefix))
        samples = scrape(url)
        count = total(samples, "llm_loadtest_ttft_seconds_count")
        assert before <= count <= N, (before, count)
        mid_checked = 0 < count < N
        if count >= N:
            pytest.fail("the run ended before a scrape could see it mid-way")
        time.sleep(0.2)
    rows = wait_for_rows(prefix, N)
    samples = scrape(url)
    timed = [r for r in rows if r["ttft_s"] and r["cancelled"] != "true"]
    assert total(samples, "llm_loadtest_ttft_seconds_count") == len(timed) == N
    assert total(samples, "llm_loadtest_requests_total", outcome="success") == N
    assert total(samples, "llm_loadtest_output_tokens_total") == sum(int(r["output_tokens"]) for r in rows)
    assert total(samples, "llm_loadtest_cached_tokens_total") == sum(int(r["cached_tokens"] or 0) for r in rows)
    ttft_sum = total(samples, "llm_loadtest_ttft_seconds_sum")
    assert ttft_sum == pytest.approx(sum(float(r["ttft_s"]) for r in rows), rel=1e-9)
    # every request's gaps are in the ITL histogram
    gaps = sum(len(r["itl_s"].split()) for r in rows)
    assert total(samples, "llm_loadtest_itl_seconds_count") == gaps
    inf = total(samples, "llm_loadtest_ttft_seconds_bucket", le="+Inf")
    assert inf == N
    return samples


@pytest.mark.timeout(150)
def test_a_single_process_serves_its_figures_on_the_web_port(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "20", "--api-key", KEY)
    prefix = tmp_path / "run"
    proc, out = start_locust(
        "--web-host",
        "127.0.0.1",
        "--web-port",
        "0",
        "--autostart",
        *LOAD,
        "-H",
        emu.url,
        "--csv",
        str(prefix),
        env={"OPENAI_API_KEY": KEY},
    )
    try:
        port = int(wait_for_line(out, r"web UI listening on port (\d+)").group(1))
        samples = check_during_and_after(f"http://127.0.0.1:{port}/metrics", prefix)
        # the run is over: nothing in flight; the label is the served model's
        assert total(samples, "llm_loadtest_requests_in_flight") == 0
        models = {dict(k)["model_name"] for k in samples["llm_loadtest_requests_total"]}
        listing = urllib.request.Request(emu.url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
        assert models == {json.loads(urllib.request.urlopen(listing, timeout=10).read())["data"][0]["id"]}
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert KEY not in page
    finally:
        proc.terminate()
        proc.wait(30)
        out.join()
    assert "Traceback" not in out.text, out.text[-3000:]


@pytest.mark.timeout(180)
def test_a_distributed_master_serves_all_its_workers_figures(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "20")
    prefix = tmp_path / "run"
    (master, mout), *workers = start_cluster(
        2, "--web-port", "0", "--autostart", *LOAD, "-H", emu.url, "--csv", str(prefix)
    )
    try:
        port = int(wait_for_line(mout, r"web UI listening on port (\d+)").group(1))
        check_during_and_after(f"http://127.0.0.1:{port}/metrics", prefix)
        # both workers' rows are in the figures
        assert len({r["worker"] for r in read_rows(prefix)}) == 2
    finally:
        terminate_all([(master, mout), *workers])
    assert "Traceback" not in mout.text, mout.text[-3000:]


@pytest.mark.timeout(120)
def test_a_headless_run_and_a_worker_serve_metrics_port(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "20")
    (master, mout), (worker, wout) = start_cluster(
        1,
        "--headless",
        *LOAD,
        "-H",
        emu.url,
        "--metrics-port",
        "0",
        worker_args=("--metrics-port", "0", "--web-host", "127.0.0.1"),
    )
    try:
        pattern = r"Prometheus figures at http://127\.0\.0\.1:(\d+)/metrics"
        urls = [f"http://127.0.0.1:{wait_for_line(o, pattern).group(1)}/metrics" for o in (mout, wout)]
        seen = [0.0, 0.0]
        deadline = time.monotonic() + 60
        while min(seen) == 0 and time.monotonic() < deadline and master.poll() is None:
            for i, url in enumerate(urls):
                try:
                    seen[i] = total(scrape(url), "llm_loadtest_requests_total")
                # the run ended between two scrapes
                except OSError:
                    break
            time.sleep(0.2)
        # the master counts the worker's shipped rows, the worker its own
        assert min(seen) > 0, seen
        master.wait(90)
        worker.wait(30)
    finally:
        for p in (master, worker):
            if p.poll() is None:
                p.kill()
        mout.join()
        wout.join()
    assert master.returncode == 0, mout.text[-3000:]
    assert "Traceback" not in mout.text + wout.text
