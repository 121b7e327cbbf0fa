"""A real run followed by the report: figures checked against the emulator's ground truth."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from reports.keys import undocumented, unknown_key_error
from tests.e2e.test_bad_input import assert_one_clear_error
from tests.procs import ROOT, run_locust
from tools import reference

KEY = "sk-test-5ecret-do-not-leak-4242"


@pytest.mark.timeout(240)
def test_report_matches_ground_truth_and_keeps_the_key_secret(emulator_factory, tmp_path):
    emu = emulator_factory("--api-key", KEY, "--step-ms", "10", "--step-ms-per-seq", "0.05")
    prefix = tmp_path / "rep" / "run"
    run = run_locust(
        "--headless",
        "-u",
        "32",
        "-r",
        "32",
        "-n",
        "150",
        "-H",
        emu.url,
        "--max-tokens",
        "48",
        "--input-tokens",
        "300",
        "--csv",
        str(prefix),
        "--csv-full-history",
        "--only-summary",
        "--check",
        "failed==0",
        "--check",
        "p90_ttft_ms<=60000,steady.median_e2el_ms<=60000",
        env={"OPENAI_API_KEY": KEY},
    )
    # checks that must pass
    assert run.returncode == 0, run
    assert KEY not in run.output
    judged = [line for line in run.output.splitlines() if line.startswith("run: check ")]
    assert len(judged) == 3 and all(line.endswith(": pass") for line in judged), judged
    assert ET.parse(prefix.with_name("run_checks.xml")).getroot().get("failures") == "0"
    # the summary the checks judged
    at_end = json.loads(prefix.with_name("run_summary.json").read_text())
    figures = {
        key
        for scope in (at_end, at_end["steady"])
        for key, value in scope.items()
        if (value is None or isinstance(value, int | float)) and not key.endswith(("_ci", "_bounds"))
    }
    # every figure of a real run is checkable
    assert {key for key in figures if unknown_key_error(key)} == set()
    # and in the docs' reference, spelled out
    documented = reference.summary()
    assert {key for key in figures if f"`{key}`" not in documented} == set()
    # the words, lists and objects too
    assert undocumented(at_end) == [] and undocumented(at_end["steady"]) == []
    with open(prefix.with_name("run_requests.csv"), newline="") as f:
        header = next(csv.reader(f))
    assert {c for c in header if f"`{c}`" not in reference.columns()} == set()
    proc = subprocess.run(
        [sys.executable, "-m", "reports", str(prefix)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    summary = json.loads(prefix.with_name("run_summary.json").read_text())
    truth = [t for t in emu.truth() if t.get("id")]
    assert summary["completed"] == len(truth) == 150
    assert summary["failed"] == 0
    assert summary["total_output_tokens"] == sum(t["output_tokens"] for t in truth)
    assert summary["total_input_tokens"] == sum(t["prompt_tokens"] for t in truth)
    true_mean_ttft_ms = 1000 * sum(t["ttft_s"] for t in truth) / len(truth)
    assert summary["mean_ttft_ms"] == pytest.approx(true_mean_ttft_ms, abs=5.0)
    true_mean_e2e_ms = 1000 * sum(t["e2e_s"] for t in truth) / len(truth)
    assert summary["mean_e2el_ms"] == pytest.approx(true_mean_e2e_ms, abs=5.0)
    for name in (
        "overview",
        "percentiles_over_time",
        "cdf",
        "cache_hit_vs_miss",
        "server_metrics",
        "ttft_decomposition",
        "request_timeline",
    ):
        png = prefix.with_name(f"run_{name}.png")
        with Image.open(png) as img:
            img.verify()
        with Image.open(png) as img:
            assert img.format == "PNG" and img.size[0] >= 1200 and img.size[1] >= 600, (name, img.size)
    html = prefix.with_name("run_report.html").read_text()
    # five request charts, the server metrics and the TTFT decomposition (the server's own histograms), folded
    # under the interactive ones: each an <img>
    assert html.count('<img alt="run_') == 7 and html.count('class="plotly-graph-div"') == 3
    assert "median_ttft_ms" in html
    for path in prefix.parent.iterdir():
        assert KEY not in path.read_bytes().decode("utf-8", "replace"), path
    config = json.loads(prefix.with_name("run_config.json").read_text())
    assert config["api_key_set"] is True and "api_key" not in config


@pytest.mark.timeout(120)
def test_a_failed_check_ends_the_run_with_status_3_and_an_unknown_one_before_it_starts(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "5", "--step-ms-per-seq", "0")
    prefix = tmp_path / "chk"
    common = (
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
        "--only-summary",
    )
    run = run_locust(*common, "--csv", str(prefix), "--check", "completed==20", "--check", "mean_ttft_ms<=0.001")
    assert run.returncode == 3, run
    assert "Traceback" not in run.output
    judged = [line for line in run.output.splitlines() if line.startswith("chk: check ")]
    assert judged[0] == "chk: check completed==20: 20: pass", judged
    assert judged[1].startswith("chk: check mean_ttft_ms<=0.001: ") and judged[1].endswith(": fail"), judged
    assert ET.parse(f"{prefix}_checks.xml").getroot().get("failures") == "1"
    unknown = run_locust(*common, "--csv", str(prefix), "--check", "p99_ttft<=5", timeout=60)
    assert_one_clear_error(unknown, "did you mean p99_ttft_ms")
    assert_one_clear_error(run_locust(*common, "--check", "failed==0", timeout=60), "give --csv PREFIX")
    # neither bad run sent a request
    assert len(emu.truth()) == 20
