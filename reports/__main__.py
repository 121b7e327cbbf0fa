"""``python -m reports PREFIX [PREFIX2 ...]``: summary JSON, charts and an HTML page beside the CSVs;
``python -m reports compare BASE NEW``: what changed, with intervals and verdicts (reports/compare.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from reports import charts, interactive
from reports.answers import answers
from reports.checks import FAILED_STATUS, judge_and_write, parse_check
from reports.compare import main as compare_main
from reports.html import title_of, write_report
from reports.intervals import ci_level_error
from reports.load import ReportInputError, RunData, load_run
from reports.metrics import windows
from reports.summary import summary_of, users_over_time, write_summary
from reports.terminal import results_block
from scheduler.errors import ParameterError
from scheduler.slo import parse_slo


def report_run(
    run: RunData, slo: Mapping[str, float], ci_level: float | None = None
) -> tuple[dict, list[str], list[str]]:
    """Write one run's outputs; returns its summary, chart paths and notes."""
    summary, notes = summary_of(run, slo, ci_level)
    out_charts = charts_of(run, summary)
    write_summary(run.prefix, summary)
    return summary, out_charts, notes


def interactive_of(run: RunData, summary: dict) -> list[str]:
    """One run's interactive charts, as the page's ``<div>``s."""
    rows = run.requests
    if rows is None or rows.empty:
        return []
    width = max(1.0, round((summary["duration_s"] or 1.0) / 60.0, 1))
    return [
        interactive.html_of(interactive.cdfs(rows), "chart-cdf"),
        interactive.html_of(interactive.over_time(windows(rows, width), users_over_time(run)), "chart-over-time"),
        interactive.html_of(interactive.request_timeline(rows, run.server, users_over_time(run)), "chart-timeline"),
    ]


def charts_of(run: RunData, summary: dict) -> list[str]:
    """One run's charts beside its CSVs."""
    p, rows = run.prefix, run.requests
    if rows is None or rows.empty:
        out = [charts.locust_percentiles(run.stats, f"{p}_locust_percentiles.png")] if run.stats is not None else []
    else:
        out = (
            [charts.ttft_decomposition(summary, f"{p}_ttft_decomposition.png")]
            if "server_mean_ttft_ms" in summary
            else []
        )
        out.append(charts.seed_figure(rows, f"{p}_overview.png", f"{run.name}: per-request figures"))
        width = max(1.0, round((summary["duration_s"] or 1.0) / 60.0, 1))
        out.append(
            charts.percentiles_over_time(
                windows(rows, width),
                users_over_time(run),
                f"{p}_percentiles_over_time.png",
                f"{width:g} s windows",
                summary.get("steady_window_s"),
            )
        )
        out.append(charts.cdfs({run.name: rows}, f"{p}_cdf.png"))
        out.append(charts.request_timeline(rows, run.server, users_over_time(run), f"{p}_request_timeline.png"))
        if summary.get("server_span_requests"):
            out.append(charts.client_minus_server_ttft(rows, f"{p}_client_minus_server_ttft.png"))
        # several models (LoRA adapters): their TTFT and TPOT side by side
        if summary.get("models"):
            out.append(charts.cdfs({m: rows[rows["model"] == m] for m in summary["models"]}, f"{p}_models_cdf.png"))
        out.append(charts.cache_hit_vs_miss(rows, f"{p}_cache_hit_vs_miss.png"))
        if len(summary.get("by_turn") or ()) > 1:
            out.append(charts.sessions_by_turn(summary, f"{p}_by_turn.png"))
        if summary.get("retention"):
            out.append(charts.retention(summary, f"{p}_retention.png"))
        if summary.get("prefix_cache_by_trace_minute"):
            out.append(charts.prefix_cache_over_trace(summary, f"{p}_prefix_cache_efficiency.png"))
        if summary.get("prefix_cache_speedup"):
            out.append(charts.prefix_cache_speedup(summary, f"{p}_prefix_cache_speedup.png"))
        elif "kv_cache_cliff_tokens" in summary:
            out.append(charts.kv_working_set(summary, f"{p}_kv_working_set.png"))
        elif summary.get("levels"):
            out.append(charts.latency_throughput({run.name: summary}, f"{p}_latency_throughput.png"))
    if run.server is not None and len(run.server) >= 2:
        out.append(charts.server_metrics(run.server, f"{p}_server_metrics.png"))
    if run.telemetry is not None and not run.telemetry.empty and rows is not None and not rows.empty:
        out.append(charts.gpu_power(run.telemetry, rows, f"{p}_gpu_power.png"))
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__)
    parser.add_argument("prefixes", nargs="+", metavar="PREFIX", help="the --csv prefix of a run (several: compare)")
    parser.add_argument("--slo", default=None, help="goodput SLOs, e.g. ttft_ms=500,tpot_ms=50,e2el_ms=20000")
    parser.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="EXPR",
        help="fail (exit status 3) unless the summary meets it, e.g. p99_ttft_ms<=2500; repeatable",
    )
    parser.add_argument(
        "--check-inconclusive",
        choices=("fail", "pass"),
        default="fail",
        help="a check whose interval straddles its bound: fail (default) or pass",
    )
    parser.add_argument(
        "--ci-level",
        type=float,
        default=None,
        help="confidence level of the intervals (<key>_ci; default: the run's --ci-level, else 0.95)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # python -m reports compare BASE NEW
    if argv[:1] == ["compare"]:
        return compare_main(argv[1:])
    args = _parser().parse_args(argv)
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
                passed = (
                    judge_and_write(run.name, run.prefix, summary, checks, args.check_inconclusive == "pass") and passed
                )
            print(results_block(run.name, summary, page_of(run, summary, run_charts, notes)))
            print(f"report: {run.prefix}_report.html")
        if len(runs) > 1:
            print(f"comparison: {side_by_side(runs, summaries)}")
    except ParameterError as exc:
        # the command's own flag: --slo
        print(f"error: {exc.named(lambda parameter: '--' + parameter.replace('_', '-'))}", file=sys.stderr)
        return 2
    except (ReportInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write the report: {exc.strerror} ({exc.filename})", file=sys.stderr)
        return 1
    return 0 if passed else FAILED_STATUS


def page_of(run: RunData, summary: dict, run_charts: list[str], notes: list[str]) -> list[str]:
    """Write one run's page; returns its answers (the sentences it leads with)."""
    said = answers(summary, run.config.get("input_tokens"))
    write_report(
        f"{run.prefix}_report.html",
        title_of(run.name, run.config),
        {run.name: summary},
        run_charts,
        run.config,
        notes,
        said,
        interactive_of(run, summary),
    )
    return said


def side_by_side(runs: list[RunData], summaries: dict[str, dict]) -> str:
    """Several runs side by side (prefix cache on vs off, two servers...): the page's path."""
    first = runs[0].prefix
    with_rows = {r.name: r.requests for r in runs if r.requests is not None and not r.requests.empty}
    compare_charts = [charts.cdfs(with_rows, f"{first}_compare_cdf.png")] if with_rows else []
    swept = {name: s for name, s in summaries.items() if s.get("levels")}
    # several sweeps overlaid
    if swept:
        compare_charts.append(charts.latency_throughput(swept, f"{first}_compare_latency_throughput.png"))
    return write_report(
        f"{first}_compare.html", "Comparison: " + " vs ".join(summaries), summaries, compare_charts, {}, []
    )


if __name__ == "__main__":
    sys.exit(main())
