"""The tuning loop against the emulator, end to end: servers started, checked and stopped per point, a point
whose server does not start recorded and passed over, Ctrl-C leaving nothing running, --resume going on."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import uuid

import psutil
import pytest

from tests.procs import ROOT, Drain, wait_for_line

GRID = """
server:
  command: >-
    {python} -m emulator --port {{port}} --model {model} --step-ms 20 --step-ms-per-seq 0
    --prefill-ms-per-token 0.2 --max-num-seqs {{max_num_seqs}} {{enable_prefix_caching}}
url: http://127.0.0.1:0
ready_timeout_s: 30
points:
  - {{enable_prefix_caching: false, max_num_seqs: 8}}
  - {{enable_prefix_caching: true, max_num_seqs: 8}}
  - {{enable_prefix_caching: true, max_num_seqs: many}}
workload: ["-u", "4", "-r", "4", "-n", "40", "--input-tokens", "1024", "--prefix-tokens", "896", "--max-tokens", "8",
           "--ignore-eos"]
objective: {{minimize: mean_ttft_ms}}
"""


def leftovers(marker: str, out) -> list[str]:
    """Processes of the loop still running: its servers (by their model name) and its Locust runs (by --csv)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        if marker in line or (str(out) in line and "locust" in line):
            found.append(line)
    return found


def loop(*args: str) -> tuple[subprocess.Popen, Drain]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuning", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    return proc, Drain(proc)


@pytest.mark.timeout(300)
def test_the_loop_runs_each_point_survives_a_bad_one_cleans_up_on_ctrl_c_and_resumes(tmp_path):
    marker = f"tuning-e2e-{uuid.uuid4().hex[:8]}"
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID.format(python=sys.executable, model=marker))
    out = tmp_path / "out"
    first, first_out = loop(str(grid), "--out", str(out))
    wait_for_line(first_out, r"point enable_prefix_caching-true_max_num_seqs-8: running the workload", timeout=120)
    # Ctrl-C in the middle of the second point
    first.send_signal(signal.SIGINT)
    assert first.wait(60) == 130
    first_out.join()
    assert "stopped: the points done so far" in first_out.text and "Traceback" not in first_out.text
    # no server and no Locust outlives the loop
    assert leftovers(marker, out) == []
    second, second_out = loop(str(grid), "--out", str(out), "--resume")
    # a point failed
    assert second.wait(240) == 1, second_out.text
    second_out.join()
    text = second_out.text
    assert "point enable_prefix_caching-false_max_num_seqs-8: done before (--resume)" in text
    assert "point enable_prefix_caching-true_max_num_seqs-8: ok" in text
    assert "point enable_prefix_caching-true_max_num_seqs-many: failed: the server exited (status 2)" in text
    # the last lines of its log
    assert "invalid int value: 'many'" in text
    assert leftovers(marker, out) == []
    with open(out / "tuning.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["enable_prefix_caching"], r["status"]) for r in rows] == [
        ("false", "ok"),
        ("true", "ok"),
        ("true", "failed"),
    ]
    assert rows[0]["completed"] == rows[1]["completed"] == "40"
    for name, cached in (
        ("enable_prefix_caching-false_max_num_seqs-8", False),
        ("enable_prefix_caching-true_max_num_seqs-8", True),
    ):
        with open(out / "points" / name / "run_requests.csv", newline="") as f:
            hits = sum(int(r["cached_tokens"]) > 0 for r in csv.DictReader(f))
        # the point's server ran its setting
        assert (hits > 30) if cached else (hits == 0), (name, hits)
    summary = json.loads((out / "tuning_summary.json").read_text())
    (effect,) = summary["setting_effects"]["enable_prefix_caching"]
    # the cache's speed-up
    assert effect["from"] is False and effect["to"] is True and effect["mean_ttft_ms"] < 0.5
    # and surely so
    assert effect["mean_ttft_ms_ci"][1] < 1 and effect["ci_method"].startswith("one pair of runs")
    assert summary["best"]["name"] == "enable_prefix_caching-true_max_num_seqs-8"
    page = (out / "tuning_report.html").read_text()
    assert "Best by mean_ttft_ms: enable_prefix_caching-true_max_num_seqs-8" in page and "tuning_pareto.png" in page
    assert "enable_prefix_caching False → True: mean TTFT ×" in page and "95% CI" in page


@pytest.mark.timeout(180)
def test_a_points_workload_runs_distributed_and_its_chart_is_per_gpu(tmp_path):
    grid = tmp_path / "grid.yaml"
    one_point = GRID.replace("  - {{enable_prefix_caching: false, max_num_seqs: 8}}\n", "").replace(
        "  - {{enable_prefix_caching: true, max_num_seqs: many}}\n", ""
    )
    grid.write_text(
        one_point.format(python=sys.executable, model=f"tuning-e2e-{uuid.uuid4().hex[:8]}") + "workers: 2\ngpus: 2\n"
    )
    out = tmp_path / "out"
    proc, output = loop(str(grid), "--out", str(out))
    assert proc.wait(150) == 0, output.text
    output.join()
    (point,) = json.loads((out / "tuning_summary.json").read_text())["points"]
    assert point["status"] == "ok" and point["figures"]["completed"] == 40 and point["gpus"] == 2
    with open(out / "points" / point["name"] / "run_requests.csv", newline="") as f:
        workers = {r["worker"] for r in csv.DictReader(f)}
    # both workers sent requests; the master counted all 40 once
    assert len(workers) == 2
