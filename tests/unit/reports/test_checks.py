"""Checks that fail a CI job: parsed in one line, judged with their interval, written as JUnit, exit status 3."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from reports.checks import failed, judge, junit, parse_check
from reports.keys import unknown_key_error
from tests.unit.reports.test_load import HEADER, ROW, assert_one_line_error, report

SUMMARY = {
    "failed": 0,
    "p99_ttft_ms": 100.0,
    "p99_ttft_ms_ci": [90.0, 120.0],
    "request_throughput": 5.0,
    "median_tpot_ms": math.nan,
    "steady": {"p99_ttft_ms": 80.0},
    "p99_e2el_ms": 100.0,
    "p99_e2el_ms_ci": [90.0, None],
    "models": {"sql-lora": {"p99_ttft_ms": 70.0}},
    "hosts": {"http://10.0.0.1:8000": {"failed": 2}},
}


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        # the whole interval meets it
        ("p99_ttft_ms<=150", "pass"),
        # none of it does
        ("p99_ttft_ms<=80", "fail"),
        # it straddles the bound
        ("p99_ttft_ms<=100", "inconclusive"),
        ("p99_ttft_ms > 85", "pass"),
        # no interval: the value
        ("failed==0", "pass"),
        ("request_throughput>=10", "fail"),
        # no figure to judge
        ("median_tpot_ms<=5", "inconclusive"),
        # a figure inside an object
        ("steady.p99_ttft_ms<=90", "pass"),
        # one model's figure (--model a:0.5,sql-lora:0.5)
        ("models.sql-lora.p99_ttft_ms<=60", "fail"),
        # one host's, its URL's dots and all
        ("hosts.http://10.0.0.1:8000.failed==0", "fail"),
        # too few requests to bound it above, but its lowest is already over
        ("p99_e2el_ms<=50", "fail"),
        # ... and it cannot be shown to be under
        ("p99_e2el_ms<=500", "inconclusive"),
        ("p99_e2el_ms>=50", "pass"),
    ],
)
def test_a_check_passes_only_when_its_whole_interval_meets_it(text, outcome):
    assert judge(parse_check(text), SUMMARY).outcome == outcome


@pytest.mark.parametrize("text", ["p99_ttft_ms", "p99_ttft_ms=<5", "<=5", "p99_ttft_ms<=fast", "p99 ttft<=5"])
def test_a_check_that_does_not_parse_is_one_line(text):
    with pytest.raises(ValueError, match=r"expected KEY OP NUMBER|is not a number"):
        parse_check(text)


def test_a_key_no_summary_holds_is_refused_and_one_this_run_lacks_is_inconclusive():
    for text, near in (
        ("p99_ttft_s<=1", "did you mean"),
        ("steady.nothing<=1", "keys of PREFIX_summary.json"),
        ("levels.p99_ttft_ms<=1", ""),
    ):
        with pytest.raises(ValueError, match=f"no summary figure is called .*{near}"):
            parse_check(text)
    verdict = judge(parse_check("capacity_rps>=20"), SUMMARY)
    assert (verdict.outcome, verdict.value) == ("inconclusive", None)
    assert verdict.line(0.95) == "check capacity_rps>=20: n/a: inconclusive (this run's summary has no capacity_rps)"


def test_the_junit_file_has_one_case_per_check_and_a_failure_for_each_failed_one():
    verdicts = [judge(parse_check(t), SUMMARY) for t in ("p99_ttft_ms<=150", "p99_ttft_ms<=100", "failed==1")]
    for inconclusive_passes, failures in ((False, 2), (True, 1)):
        suite = ET.fromstring(junit("run", verdicts, 0.95, inconclusive_passes))
        assert suite.get("tests") == "3" and suite.get("failures") == str(failures)
        assert [c.get("name") for c in suite] == ["p99_ttft_ms<=150", "p99_ttft_ms<=100", "failed==1"]
        assert sum(c.find("failure") is not None for c in suite) == failures
        assert len(failed(verdicts, inconclusive_passes)) == failures
    assert verdicts[1].line(0.95) == (
        "check p99_ttft_ms<=100: 100 (95% CI 90 to 120): inconclusive (the 95% "
        "interval reaches both sides of 100: a longer run narrows it)"
    )


def test_the_report_command_exits_3_on_a_failed_check_and_writes_the_junit_file(tmp_path):
    rng = np.random.default_rng(1)
    rows = "".join(
        ROW.format(i=i, t=1.7e9 + i).replace("0.1,", f"{0.1 + rng.random() / 100:.5f},", 1) for i in range(600)
    )
    (tmp_path / "r_requests.csv").write_text(HEADER + rows)
    prefix = str(tmp_path / "r")
    ok = report(prefix, "--check", "failed==0", "--check", "p99_ttft_ms<=1000")
    assert ok.returncode == 0, ok.stderr
    assert "r: check failed==0: 0: pass" in ok.stdout and "r: check p99_ttft_ms<=1000:" in ok.stdout
    bad = report(prefix, "--check", "p99_ttft_ms<=50")
    assert bad.returncode == 3 and "p99_ttft_ms<=50" in bad.stdout and ": fail" in bad.stdout
    suite = ET.parse(tmp_path / "r_checks.xml").getroot()
    assert suite.get("failures") == "1"
    summary = json.loads((tmp_path / "r_summary.json").read_text())
    figures = {
        key
        for scope in (summary, summary.get("steady", {}))
        for key, value in scope.items()
        if (value is None or isinstance(value, int | float)) and not key.endswith(("_ci", "_bounds"))
    }
    # every figure can be checked
    assert {key for key in figures if unknown_key_error(key)} == set()
    assert_one_line_error(report(prefix, "--check", "p99_ttft<=50"), "no summary figure is called 'p99_ttft'")
    assert_one_line_error(report(prefix, "--check", "p99_ttft_ms<<50"), "expected KEY OP NUMBER")


def test_an_inconclusive_check_says_why_and_what_would_settle_it():
    import scipy  # noqa: F401  (the interval below is the one the summary would have)

    from reports.intervals import percentile_ci

    values = np.linspace(100.0, 2000.0, 40)
    summary = {
        "completed": 40,
        "ci_level": 0.95,
        "p99_ttft_ms": float(np.percentile(values, 99)),
        "p99_ttft_ms_ci": percentile_ci(values, 99, 0.95),
    }
    verdict = judge(parse_check("p99_ttft_ms<=2500"), summary)
    assert verdict.outcome == "inconclusive"
    assert verdict.reason == "a 95% upper bound of a p99 needs at least 368 requests; this run had 40"
    # 368 is the fewest whose interval has that bound
    many = np.linspace(100.0, 2000.0, 368)
    assert percentile_ci(many, 99, 0.95)[1] is not None and percentile_ci(many[:-1], 99, 0.95)[1] is None
    straddle = judge(parse_check("p99_ttft_ms<=1990"), {**summary, "p99_ttft_ms_ci": [1900.0, 2100.0]})
    assert straddle.outcome == "inconclusive" and "reaches both sides of 1990" in straddle.reason
    assert "summary has no median_itl_ms" in judge(parse_check("median_itl_ms<=5"), summary).line(0.95)


def test_tuning_judges_its_conditions_by_the_same_rule_as_check():
    from tuning.results import PointResult

    # one repetition of 40 requests: the summary's p99 has no upper bound, so the condition is not met
    one = PointResult("a", {}, repeats=[{"p99_ttft_ms": 2000.0, "p99_ttft_ms_ci": [1500.0, None]}])
    check = parse_check("p99_ttft_ms<=2500")
    assert judge(check, one.figures).outcome == "inconclusive"
    # two repetitions: Student's t over them
    two = PointResult("b", {}, repeats=[{"p99_ttft_ms": 2000.0}, {"p99_ttft_ms": 2100.0}])
    figures = two.figures
    assert figures["p99_ttft_ms"] == 2050.0 and figures["p99_ttft_ms_ci"][1] > 2500  # type: ignore[index]
    assert judge(check, figures).outcome == "inconclusive"
