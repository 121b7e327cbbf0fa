"""``python -m reports PREFIX [PREFIX2 ...]``: summary JSON, charts and an HTML page beside the CSVs."""

from __future__ import annotations

import argparse
import json
import math
import sys

import pandas as pd

from llmclient.cpu import BOTTLENECK
from reports import charts
from reports.checks import FAILED_STATUS, Check, failed, judge, junit, parse_check
from reports.html import write_report
from reports.intervals import ci_level_error
from reports.load import ReportInputError, RunData, load_run
from reports.metrics import (
    levels_summary,
    per_host,
    per_replica,
    per_stage,
    steady_summary,
    summarize,
    trace_summary,
    windows,
)
from scheduler.slo import parse_slo


def _clean(value: object) -> object:
    """NaN as null, at any depth (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _users_over_time(run: RunData) -> pd.DataFrame | None:
    h = run.history
    if h is None or h.empty:
        return None
    agg = h[h["Name"] == "Aggregated"]
    if agg.empty or run.requests is None or run.requests.empty:
        return None
    t0 = run.requests["start_time"].min()
    return pd.DataFrame({"time_s": agg["Timestamp"] - t0, "users": agg["User Count"]})


def report_run(run: RunData, slo: dict, ci_level: float | None = None) -> tuple[dict, list[str], list[str]]:
    """Write one run's outputs; returns its summary, chart paths and notes."""
    p = run.prefix
    if run.requests is not None and not run.requests.empty:
        level = ci_level if ci_level is not None else float(run.config.get("ci_level") or 0.95)
        summary, out_charts, notes = _from_requests(run, run.requests, slo, level)
    elif run.stats is not None:
        notes = ["This run has no _requests.csv: figures come from Locust's own CSVs, whose percentiles are "
                 "bucketed to about two significant digits."]  # fmt: skip
        summary = _summary_from_locust(run.stats)
        out_charts = [charts.locust_percentiles(run.stats, f"{p}_locust_percentiles.png")]
    else:
        raise ReportInputError(f"{p}_requests.csv: no rows to report")
    if run.server is not None and len(run.server) >= 2:
        out_charts.append(charts.server_metrics(run.server, f"{p}_server_metrics.png"))
    with open(f"{p}_summary.json", "w", encoding="utf-8") as f:
        json.dump(_clean(summary), f, indent=2)
    return summary, out_charts, notes


def _from_requests(run: RunData, rows: pd.DataFrame, slo: dict,
                   ci_level: float) -> tuple[dict, list[str], list[str]]:  # fmt: skip
    """A run with its per-request rows: the summary, the charts and the notes."""
    p = run.prefix
    summary = summarize(rows, run.server, slo, run.config.get("request_rate"), run.histograms, ci_level)
    summary.update(per_host(rows, slo))
    summary.update(per_stage(rows, run.histograms, slo))
    summary.update(per_replica(run.replicas))
    users = _users_over_time(run)
    summary.update(steady_summary(rows, users, slo, run.config.get("request_rate"), ci_level))
    notes = _client_notes(run, summary)
    out_charts: list[str] = []
    if "server_mean_ttft_ms" in summary:
        out_charts.append(charts.ttft_decomposition(summary, f"{p}_ttft_decomposition.png"))
    out_charts.append(charts.seed_figure(rows, f"{p}_overview.png", f"{run.name}: per-request figures"))
    width = max(1.0, round((summary["duration_s"] or 1.0) / 60.0, 1))
    out_charts.append(charts.percentiles_over_time(windows(rows, width), users,
                                                   f"{p}_percentiles_over_time.png", f"{width:g} s windows",
                                                   summary.get("steady_window_s")))  # fmt: skip
    out_charts.append(charts.cdfs({run.name: rows}, f"{p}_cdf.png"))
    out_charts.append(charts.cache_hit_vs_miss(rows, f"{p}_cache_hit_vs_miss.png"))
    _add_trace(run, rows, summary, notes, out_charts)
    _add_levels(run, rows, slo, summary, notes, out_charts)
    return summary, out_charts, notes


def _client_notes(run: RunData, summary: dict) -> list[str]:
    """The client's CPU verdict and floor (into the summary too), the schedule's warning, a warm cache."""
    notes = []
    if run.client_cpu:
        summary["client_cpu_max_share"] = run.client_cpu.get("client_cpu_max_share")
        summary["client_cpu_bound"] = bool(run.client_cpu.get("client_cpu_bound"))
        if summary["client_cpu_bound"]:
            notes.append(f"{BOTTLENECK.capitalize()}: a client process used or waited for over 90% of a core for "
                         "more than 10% of the run, so its TTFT and ITL include its own delays.")  # fmt: skip
    cal = run.calibration
    if cal:
        summary.update({k: v for k, v in cal.items() if k.startswith("client_")})
        notes.append(
            f"The client's floor on this machine (--calibrate, {cal.get('users')} streams against a "
            f"zero-latency emulator): TTFT error p50 {cal.get('client_floor_ttft_error_p50_ms', 0):.2f} ms, "
            f"p99 {cal.get('client_floor_ttft_error_p99_ms', 0):.2f} ms; one client core streams "
            f"{cal.get('client_chunks_per_cpu_s') or 0:,.0f} chunks/s."
        )
    if summary.get("schedule_warning"):
        notes.append(f"Open loop: {summary['schedule_warning']}.")
        print(f"warning: {run.name}: {summary['schedule_warning']}", file=sys.stderr)
    if summary.get("warm_cache_requests"):
        notes.append(
            f"{summary['warm_cache_requests']} requests found their prompt's own part already in the server's "
            "prefix cache: the cache was warm from an earlier run with the same --seed, so TTFT looks better "
            "than a cold server's. Use a new --seed or --reset-prefix-cache."
        )
    return notes


def _add_trace(run: RunData, rows: pd.DataFrame, summary: dict, notes: list[str], out_charts: list[str]) -> None:
    """A replayed trace: the cache's ideal against what the server held."""
    trace = trace_summary(rows, float(run.config.get("trace_speed") or 1.0))
    if not trace:
        return
    summary.update(trace)
    summary["trace_ideal_prefix_cache_hit_rate"] = (run.config.get("trace_facts") or {}).get(
        "ideal_prefix_cache_hit_rate"
    )
    ideal = trace.get("ideal_prefix_cache_hit_rate")
    if summary["prefix_cache_hit_rate_source"] == "server_metrics" and ideal:  # the server's own counters
        summary["server_prefix_cache_efficiency"] = summary["prefix_cache_hit_rate"] / ideal
    notes.append(trace_note(summary))
    if trace.get("prefix_cache_by_trace_minute"):
        out_charts.append(charts.prefix_cache_over_trace(trace, f"{run.prefix}_prefix_cache_efficiency.png"))


def _add_levels(run: RunData, rows: pd.DataFrame, slo: dict, summary: dict, notes: list[str],
                out_charts: list[str]) -> None:  # fmt: skip
    """A sweep's or capacity search's levels: their figures, and the curve or the KV cliff."""
    if run.levels is None or run.levels.empty:
        return
    run_slo = slo or parse_slo(run.config.get("slo") or "")
    target = float(run.config.get("slo_attainment") or 0.99)
    summary.update(levels_summary(rows, run.levels, run.server, run_slo, target,
                                  bool(run.config.get("find_capacity")), run.config.get("request_rate"),
                                  int(run.config.get("prefix_tokens") or 0), run.histograms))  # fmt: skip
    if "kv_cache_cliff_tokens" in summary:
        out_charts.append(charts.kv_working_set(summary, f"{run.prefix}_kv_working_set.png"))
        notes.append(cliff_note(summary))
    else:
        out_charts.append(charts.latency_throughput({run.name: summary}, f"{run.prefix}_latency_throughput.png"))


def trace_note(summary: dict) -> str:
    """What the replay says about the prefix cache, in a sentence."""

    def pct(key: str) -> str:
        value = summary.get(key)
        return f"{value:.1%}" if isinstance(value, float) and not math.isnan(value) else "n/a"

    return (
        f"Trace replay of {summary.get('trace_requests')} requests: the server's prefix cache held "
        f"{pct('measured_prefix_cache_hit_rate')} of the prompt tokens where an unbounded cache would hold "
        f"{pct('ideal_prefix_cache_hit_rate')} (efficiency {pct('prefix_cache_efficiency')}; over the whole trace "
        f"the ideal is {pct('trace_ideal_prefix_cache_hit_rate')})."
    )


def cliff_note(summary: dict) -> str:
    found = summary.get("kv_cache_cliff_tokens")
    if not found:
        return (
            "Prefix-groups sweep: no cliff among these levels (the cache held at least half of what it could at "
            "every working set, or at none): extend the levels to find it."
        )
    estimate = summary.get("kv_cache_capacity_estimate_tokens")
    return (
        f"Prefix-groups sweep: the prefix cache held at least half of what it could up to a working set of "
        f"{found[0]:,.0f} shared-prefix tokens, and less beyond {found[1]:,.0f}: the cliff. The levels past it "
        f"put the cache this traffic really gets at about {estimate or 0:,.0f} tokens."
    )


def _summary_from_locust(stats: pd.DataFrame) -> dict:
    out: dict = {"source": "locust _stats.csv (bucketed)"}
    for kind, name in (("POST", "e2el"), ("TTFT", "ttft"), ("TPOT", "tpot")):
        row = stats[stats["Type"] == kind]
        if row.empty:
            continue
        r = row.iloc[0]
        if kind == "POST":
            out["completed"] = int(r["Request Count"]) - int(r["Failure Count"])
            out["failed"] = int(r["Failure Count"])
        out[f"median_{name}_ms"] = float(pd.to_numeric(r["50%"], errors="coerce"))
        out[f"p90_{name}_ms"] = float(pd.to_numeric(r["90%"], errors="coerce"))
        out[f"p99_{name}_ms"] = float(pd.to_numeric(r["99%"], errors="coerce"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__)
    parser.add_argument("prefixes", nargs="+", metavar="PREFIX", help="the --csv prefix of a run (several: compare)")
    parser.add_argument("--slo", default=None, help="goodput SLOs, e.g. ttft_ms=500,tpot_ms=50,e2el_ms=20000")
    parser.add_argument("--check", action="append", default=[], metavar="EXPR",
                        help="fail (exit status 3) unless the summary meets it, e.g. p99_ttft_ms<=2500; repeatable")  # fmt: skip
    parser.add_argument("--check-inconclusive", choices=("fail", "pass"), default="fail",
                        help="a check whose interval straddles its bound: fail (default) or pass")  # fmt: skip
    parser.add_argument("--ci-level", type=float, default=None,
                        help="confidence level of the intervals (<key>_ci; default: the run's --ci-level, else 0.95)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        slo = parse_slo(args.slo)
        if args.ci_level is not None and ci_level_error(args.ci_level):
            raise ValueError(ci_level_error(args.ci_level))
        checks = [parse_check(text) for text in args.check]
        runs = [load_run(p) for p in args.prefixes]
        summaries: dict[str, dict] = {}
        passed = True
        for run in runs:
            summary, run_charts, notes = report_run(run, slo, args.ci_level)
            summaries[run.name] = summary
            if checks:
                passed = apply_checks(run, summary, checks, args.check_inconclusive == "pass") and passed
            page = write_report(
                f"{run.prefix}_report.html",
                f"Load test report: {run.name}",
                {run.name: summary},
                run_charts,
                run.config,
                notes,
            )
            print(f"report: {page}")
        if len(runs) > 1:
            print(f"comparison: {compare(runs, summaries)}")
    except (ReportInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write the report: {exc.strerror} ({exc.filename})", file=sys.stderr)
        return 1
    return 0 if passed else FAILED_STATUS


def compare(runs: list[RunData], summaries: dict[str, dict]) -> str:
    """Several runs side by side (prefix cache on vs off, two servers...): the page's path."""
    first = runs[0].prefix
    with_rows = {r.name: r.requests for r in runs if r.requests is not None and not r.requests.empty}
    compare_charts = [charts.cdfs(with_rows, f"{first}_compare_cdf.png")] if with_rows else []
    swept = {name: s for name, s in summaries.items() if s.get("levels")}
    if swept:  # several sweeps overlaid
        compare_charts.append(charts.latency_throughput(swept, f"{first}_compare_latency_throughput.png"))
    return write_report(f"{first}_compare.html", "Comparison: " + " vs ".join(summaries), summaries, compare_charts,
                        {}, [])  # fmt: skip


def apply_checks(run: RunData, summary: dict, checks: list[Check], inconclusive_passes: bool) -> bool:
    """Judge the checks on a run's summary: a line each, ``PREFIX_checks.xml``; True when all passed."""
    level = float(summary.get("ci_level") or 0.95)
    try:
        verdicts = [judge(check, summary) for check in checks]
    except KeyError as exc:
        raise ReportInputError(f"--check: the summary has no {exc.args[0]!r} (see {run.prefix}_summary.json)") from None
    for verdict in verdicts:
        print(f"{run.name}: {verdict.line(level)}")
    with open(f"{run.prefix}_checks.xml", "w", encoding="utf-8") as f:
        f.write(junit(run.name, verdicts, level, inconclusive_passes))
    return not failed(verdicts, inconclusive_passes)


if __name__ == "__main__":
    sys.exit(main())
