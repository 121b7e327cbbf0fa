"""Bad report inputs: one clear line naming the file, never a traceback."""

from __future__ import annotations

import subprocess
import sys

from tests.procs import ROOT

HEADER = "request_id,start_time,endpoint,status,success,error,ttft_s,tpot_s,e2e_s,decode_tps,prompt_tokens,"
HEADER += "cached_tokens,output_tokens,usage_source,finish_reason,itl_s,worker\n"
ROW = "r{i},{t},chat,200,true,,0.1,0.02,1.1,50.0,100,0,51,server,length,0.020000 0.020000,local\n"


def report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reports", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_missing_files(tmp_path):
    assert_one_line_error(report(str(tmp_path / "nothing")), "nothing_requests.csv", "nothing_stats.csv")


def test_empty_file(tmp_path):
    (tmp_path / "r_requests.csv").write_text("")
    assert_one_line_error(report(str(tmp_path / "r")), "r_requests.csv", "empty")


def test_wrong_columns(tmp_path):
    (tmp_path / "r_requests.csv").write_text("a,b,c\n1,2,3\n")
    assert_one_line_error(report(str(tmp_path / "r")), "r_requests.csv", "missing column", "start_time")


def test_bad_slo(tmp_path):
    (tmp_path / "r_requests.csv").write_text(HEADER + ROW.format(i=1, t=1.0))
    assert_one_line_error(report(str(tmp_path / "r"), "--slo", "ttft=3"), "--slo")


def test_truncated_file_and_na_values_are_tolerated(tmp_path):
    rows = "".join(ROW.format(i=i, t=1000.0 + i) for i in range(5))
    rows += "r9,1009.0,chat,200,true,,N/A,N/A,N/A,N/A,100,N/A,51,server,length,,local\n"
    (tmp_path / "r_requests.csv").write_text(HEADER + rows + "r10,1010.0,chat,200,tr")
    proc = report(str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warnings = proc.stderr.strip().splitlines()
    assert len(warnings) == 1 and "r_requests.csv" in warnings[0] and "incomplete" in warnings[0]
    import json

    summary = json.loads((tmp_path / "r_summary.json").read_text())
    assert summary["completed"] == 6 and summary["mean_ttft_ms"] == 100.0


def test_locust_only_run_gets_bucketed_charts(tmp_path):
    stats = (
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
        "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,"
        "99.99%,100%\n"
        "POST,/v1/chat/completions,10,1,900,950,800,1200,50,1,0,900,950,1000,1000,1100,1100,1200,1200,1200,1200,1200\n"
        "TTFT,/v1/chat/completions,10,0,70,75,50,120,0,1,0,70,75,80,80,100,110,120,120,120,120,120\n"
        ",Aggregated,20,1,100,500,50,1200,25,2,0,100,800,900,950,1100,1100,1200,1200,1200,1200,1200\n"
    )
    (tmp_path / "l_stats.csv").write_text(stats)
    proc = report(str(tmp_path / "l"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "l_locust_percentiles.png").stat().st_size > 10_000
    html = (tmp_path / "l_report.html").read_text()
    assert "bucketed" in html
    import json

    summary = json.loads((tmp_path / "l_summary.json").read_text())
    assert summary["completed"] == 9 and summary["median_ttft_ms"] == 70
