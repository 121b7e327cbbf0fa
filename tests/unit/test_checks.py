"""Checks that fail a CI job: parsed in one line, judged with their interval, written as JUnit, exit status 3."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from reports.checks import Check, failed, judge, junit, parse_check
from tests.unit.test_report_inputs import HEADER, ROW, assert_one_line_error, report

SUMMARY = {"failed": 0, "p99_ttft_ms": 100.0, "p99_ttft_ms_ci": [90.0, 120.0], "request_throughput": 5.0,
           "median_tpot_ms": math.nan, "steady": {"p99_ttft_ms": 80.0}, "open_p99": 100.0,
           "open_p99_ci": [90.0, None]}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("p99_ttft_ms<=150", "pass"),  # the whole interval meets it
        ("p99_ttft_ms<=80", "fail"),  # none of it does
        ("p99_ttft_ms<=100", "inconclusive"),  # it straddles the bound
        ("p99_ttft_ms > 85", "pass"),
        ("failed==0", "pass"),  # no interval: the value
        ("request_throughput>=10", "fail"),
        ("median_tpot_ms<=5", "inconclusive"),  # no figure to judge
        ("steady.p99_ttft_ms<=90", "pass"),  # a figure inside an object
        ("open_p99<=50", "fail"),  # too few requests to bound it above, but its lowest is already over
        ("open_p99<=500", "inconclusive"),  # ... and it cannot be shown to be under
        ("open_p99>=50", "pass"),
    ],
)
def test_a_check_passes_only_when_its_whole_interval_meets_it(text, outcome):
    assert judge(parse_check(text), SUMMARY).outcome == outcome


@pytest.mark.parametrize("text", ["p99_ttft_ms", "p99_ttft_ms=<5", "<=5", "p99_ttft_ms<=fast", "p99 ttft<=5"])
def test_a_check_that_does_not_parse_is_one_line(text):
    with pytest.raises(ValueError, match=r"expected KEY OP NUMBER|is not a number"):
        parse_check(text)


def test_an_unknown_key_is_named():
    with pytest.raises(KeyError):
        judge(Check("p99_ttft_s", "<=", 1.0), SUMMARY)
    with pytest.raises(KeyError):
        judge(Check("steady.nothing", "<=", 1.0), SUMMARY)


def test_the_junit_file_has_one_case_per_check_and_a_failure_for_each_failed_one():
    verdicts = [judge(parse_check(t), SUMMARY) for t in ("p99_ttft_ms<=150", "p99_ttft_ms<=100", "failed==1")]
    for inconclusive_passes, failures in ((False, 2), (True, 1)):
        suite = ET.fromstring(junit("run", verdicts, 0.95, inconclusive_passes))
        assert suite.get("tests") == "3" and suite.get("failures") == str(failures)
        assert [c.get("name") for c in suite] == ["p99_ttft_ms<=150", "p99_ttft_ms<=100", "failed==1"]
        assert sum(c.find("failure") is not None for c in suite) == failures
        assert len(failed(verdicts, inconclusive_passes)) == failures
    assert verdicts[1].line(0.95) == "check p99_ttft_ms<=100: 100 (95% CI 90 to 120): inconclusive"


def test_the_report_command_exits_3_on_a_failed_check_and_writes_the_junit_file(tmp_path):
    rng = np.random.default_rng(1)
    rows = "".join(ROW.format(i=i, t=1.7e9 + i).replace("0.1,", f"{0.1 + rng.random() / 100:.5f},", 1)
                   for i in range(600))  # fmt: skip
    (tmp_path / "r_requests.csv").write_text(HEADER + rows)
    prefix = str(tmp_path / "r")
    ok = report(prefix, "--check", "failed==0", "--check", "p99_ttft_ms<=1000")
    assert ok.returncode == 0, ok.stderr
    assert "r: check failed==0: 0: pass" in ok.stdout and "r: check p99_ttft_ms<=1000:" in ok.stdout
    bad = report(prefix, "--check", "p99_ttft_ms<=50")
    assert bad.returncode == 3 and "p99_ttft_ms<=50" in bad.stdout and ": fail" in bad.stdout
    suite = ET.parse(tmp_path / "r_checks.xml").getroot()
    assert suite.get("failures") == "1"
    assert_one_line_error(report(prefix, "--check", "p99_ttft<=50"), "the summary has no 'p99_ttft'")
    assert_one_line_error(report(prefix, "--check", "p99_ttft_ms<<50"), "expected KEY OP NUMBER")
