"""A run's summary (``PREFIX_summary.json``) and the notes that go with it, from what ``load_run`` read:
no charts, so the end of a Locust run can judge ``--check`` on it, and ``python -m reports`` adds them."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping

import numpy as np
import pandas as pd

from llmclient.cpu import BOTTLENECK
from reports.energy import cost_figures, energy_figures
from reports.load import ReportInputError, RunData
from reports.metrics import (
    levels_summary,
    per_host,
    per_image_count,
    per_model,
    per_replica,
    per_stage,
    steady_summary,
    summarize,
    trace_summary,
)
from reports.repeats import repeats_summary
from reports.sessions import sessions_summary
from reports.speedup import prefix_cache_speedup
from scheduler.slo import parse_slo

LOCUST_ONLY_NOTE = (
    "This run has no _requests.csv: figures come from Locust's own CSVs, whose percentiles are "
    "bucketed to about two significant digits."
)


EMBEDDINGS_NOTE = (
    "Embeddings: one JSON answer per request, no token streams back, so TTFT, TPOT, ITL and decode "
    "speed do not apply (null); E2E is each request's latency, total_input_tokens the tokens embedded."
)


def summary_of(run: RunData, slo: Mapping[str, float], ci_level: float | None = None) -> tuple[dict, list[str]]:
    """The run's summary and its notes (intervals at ``ci_level``, else the run's --ci-level, else 0.95)."""
    rows = run.requests
    if rows is None or rows.empty:
        if run.stats is None:
            raise ReportInputError(f"{run.prefix}_requests.csv: no rows to report")
        return _summary_from_locust(run.stats), [LOCUST_ONLY_NOTE]
    level = ci_level if ci_level is not None else float(run.config.get("ci_level") or 0.95)
    rate = run.config.get("request_rate")
    summary = summarize(rows, run.server, slo, rate, run.histograms, level)
    summary.update(per_host(rows, slo))
    summary.update(per_model(rows, slo))
    summary.update(per_image_count(rows, slo))
    summary.update(per_stage(rows, run.histograms, slo))
    summary.update(per_replica(run.replicas))
    summary.update(steady_summary(rows, users_over_time(run), slo, rate, level))
    _energy_and_cost(run, rows, summary)
    notes_of_spans = _server_spans(rows, summary)
    notes = _client_notes(run, summary) + notes_of_spans
    if "endpoint" in rows and (rows["endpoint"] == "embeddings").any():
        notes.append(EMBEDDINGS_NOTE)
    _trace_figures(run, rows, summary, notes)
    _level_figures(run, rows, slo, summary, notes)
    summary.update(sessions_summary(rows, run.levels, level))
    one_load = run.levels is not None and run.levels[["kind", "value"]].drop_duplicates().shape[0] == 1
    summary.update(repeats_summary(rows, slo, level, one_load))
    return summary, notes


def write_summary(prefix: str, summary: dict) -> str:
    path = f"{prefix}_summary.json"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(json_safe(summary), f, indent=2)
    return path


def json_safe(value: object) -> object:
    """NaN and infinities as null, at any depth (JSON has neither)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def users_over_time(run: RunData) -> pd.DataFrame | None:
    """Locust's user count over time, from the run's start (its _stats_history.csv)."""
    h = run.history
    if h is None or h.empty:
        return None
    agg = h[h["Name"] == "Aggregated"]
    if agg.empty or run.requests is None or run.requests.empty:
        return None
    t0 = run.requests["start_time"].min()
    return pd.DataFrame({"time_s": agg["Timestamp"] - t0, "users": agg["User Count"]})


def _client_notes(run: RunData, summary: dict) -> list[str]:
    """The client's CPU verdict and floor (into the summary too), the schedule's warning, a warm cache."""
    notes = []
    if run.client_cpu:
        summary["client_cpu_max_share"] = run.client_cpu.get("client_cpu_max_share")
        summary["client_cpu_bound"] = bool(run.client_cpu.get("client_cpu_bound"))
        if summary["client_cpu_bound"]:
            notes.append(
                f"{BOTTLENECK.capitalize()}: a client process used or waited for over 90% of a core for "
                "more than 10% of the run, so its TTFT and ITL include its own delays."
            )
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


def _energy_and_cost(run: RunData, rows: pd.DataFrame, summary: dict) -> None:
    """--telemetry-url's energy over the run's duration, and --gpu-hour-cost's price per token."""
    t0 = float(rows["start_time"].min())
    t1 = t0 + float(summary.get("duration_s") or 0.0)
    output, total_input = int(summary.get("total_output_tokens") or 0), int(summary.get("total_input_tokens") or 0)
    summary.update(energy_figures(run.telemetry, t0, t1, output))
    price = run.config.get("gpu_hour_cost")
    summary.update(cost_figures(price, run.config.get("gpus"), t1 - t0, output, total_input))


def _server_spans(rows: pd.DataFrame, summary: dict) -> list[str]:
    """--otlp-port: the rows joined to the server's spans, and each one's client − server TTFT (the network,
    the HTTP server and the client's own reading: what the server's own figures leave out)."""
    if "server_ttft_s" not in rows or "trace_id" not in rows:
        return []
    traced = rows[rows["trace_id"].notna() & (rows["trace_id"].astype(str) != "")]
    if traced.empty:
        return []
    both = traced.dropna(subset=["ttft_s", "server_ttft_s"])
    summary["server_span_requests"] = int(traced["server_ttft_s"].notna().sum())
    notes = []
    missing = len(traced) - summary["server_span_requests"]
    if missing:
        notes.append(
            f"{missing} of {len(traced)} traced requests have no span from the server: their server_* "
            "columns are empty."
        )
    if both.empty:
        return notes
    gap = (both["ttft_s"] - both["server_ttft_s"]).to_numpy(dtype=float) * 1e3
    summary["median_client_minus_server_span_ttft_ms"] = float(np.median(gap))
    summary["p99_client_minus_server_span_ttft_ms"] = float(np.percentile(gap, 99))
    worst = both.assign(gap_ms=gap).nlargest(3, "gap_ms")
    named = ", ".join(f"{r.request_id} ({r.gap_ms:.1f} ms)" for r in worst.itertuples())
    notes.append(
        f"Client − server TTFT per request (the server's spans): p50 "
        f"{summary['median_client_minus_server_span_ttft_ms']:.2f} ms, p99 "
        f"{summary['p99_client_minus_server_span_ttft_ms']:.2f} ms; the largest: {named}."
    )
    return notes


def _trace_figures(run: RunData, rows: pd.DataFrame, summary: dict, notes: list[str]) -> None:
    """A replayed trace: the cache's ideal against what the server held."""
    trace = trace_summary(rows, float(run.config.get("trace_speed") or 1.0))
    if not trace:
        return
    summary.update(trace)
    summary["trace_ideal_prefix_cache_hit_rate"] = (run.config.get("trace_facts") or {}).get(
        "ideal_prefix_cache_hit_rate"
    )
    ideal = trace.get("ideal_prefix_cache_hit_rate")
    # the server's own counters
    if summary["prefix_cache_hit_rate_source"] == "server_metrics" and ideal:
        summary["server_prefix_cache_efficiency"] = summary["prefix_cache_hit_rate"] / ideal
    notes.append(trace_note(summary))


def _level_figures(run: RunData, rows: pd.DataFrame, slo: Mapping[str, float], summary: dict, notes: list[str]) -> None:
    """A sweep's or capacity search's levels: their figures, the capacity, the KV cliff."""
    if run.levels is None or run.levels.empty:
        return
    run_slo = slo or parse_slo(run.config.get("slo") or "")
    target = float(run.config.get("slo_attainment") or 0.99)
    summary.update(
        levels_summary(
            rows,
            run.levels,
            run.server,
            run_slo,
            target,
            bool(run.config.get("find_capacity")),
            run.config.get("request_rate"),
            int(run.config.get("prefix_tokens") or 0),
            run.histograms,
        )
    )
    # each level's energy over its own span
    for level in summary["levels"]:
        level.update(
            energy_figures(run.telemetry, level["start"], level["end"], int(level["total_output_tokens"] or 0))
        )
    if "kv_cache_cliff_tokens" in summary:
        notes.append(cliff_note(summary))
    summary.update(prefix_cache_speedup(rows, summary["levels"], float(summary.get("ci_level") or 0.95)))


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
