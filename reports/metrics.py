"""Pure statistics over per-request rows, with vLLM ``bench serve`` definitions and key names.

Percentiles interpolate linearly, as numpy does by default. Failed and
cancelled requests are left out of the latency statistics. ITL gaps are
pooled over all successful requests before any statistic, as vLLM does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from llmclient.server_metrics import (
    HITS,
    QUERIES,
    Histogram,
    client_minus_server,
    prefix_cache_hit_rate,
    server_figures,
)
from reports.intervals import HEADLINE, SINGLE_RUN_METHOD, intervals_ms, rate_ci, ratio_of_sums_ci, total_rate_ci
from scheduler.levels import Level, LevelResult, capacity, design_effect, level_result, parse_windows, verdict
from scheduler.proof import prove
from scheduler.slo import format_slo, met

PERCENTILES = (50, 90, 99)
# each request's; itl: itl_s's pooled gaps
LATENCY_COLUMNS = {"ttft": "ttft_s", "tpot": "tpot_s", "e2el": "e2e_s"}
# a figure's percentile (None: the mean)
STATISTIC_OF = {"mean": None, "median": 50.0, "p90": 90.0, "p99": 99.0}


def pooled_itl(itl_column: pd.Series) -> np.ndarray:
    """All inter-token gaps of the given rows, in seconds, as one array (C-speed parse)."""
    text = " ".join(itl_column.tolist())
    if not text.strip():
        return np.empty(0)
    # text mode: parsed in C, no per-gap Python objects
    return np.fromstring(text, sep=" ")


def latency_values(rows: pd.DataFrame, name: str) -> np.ndarray:
    """The seconds a latency figure (ttft, tpot, itl, e2el) is taken over: one per request, ITL's pooled gaps."""
    return pooled_itl(rows["itl_s"].astype(str)) if name == "itl" else rows[LATENCY_COLUMNS[name]].to_numpy(dtype=float)


def latency_figure(key: str) -> tuple[str, float | None]:
    """A latency figure's name and percentile: ``p99_ttft_ms`` is (ttft, 99), ``mean_e2el_ms`` (e2el, None)."""
    stat, name, _ms = key.split("_")
    return name, STATISTIC_OF[stat]


def describe_ms(values_s: np.ndarray, name: str) -> dict[str, float]:
    """mean/median/std/p90/p99 in ms under vLLM's key names (``mean_ttft_ms`` ...)."""
    v = np.asarray(values_s, dtype=float)
    v = v[~np.isnan(v)] * 1000.0
    out: dict[str, float] = {}
    if v.size == 0:
        for key in ("mean", "median", "std", *(f"p{p}" for p in PERCENTILES if p != 50)):
            out[f"{key}_{name}_ms"] = float("nan")
        return out
    out[f"mean_{name}_ms"] = float(v.mean())
    out[f"median_{name}_ms"] = float(np.median(v))
    out[f"std_{name}_ms"] = float(v.std())
    for p in PERCENTILES:
        if p != 50:
            out[f"p{p}_{name}_ms"] = float(np.percentile(v, p))
    return out


def duration_s(rows: pd.DataFrame) -> float:
    """From the first request's start to the last completion (vLLM's benchmark duration)."""
    if rows.empty:
        return 0.0
    start = rows["start_time"].min()
    end = (rows["start_time"] + rows["e2e_s"].fillna(0.0)).max()
    return float(max(end - start, 0.0))


def cache_hit_rate_from_usage(rows: pd.DataFrame) -> float:
    known = rows.dropna(subset=["cached_tokens", "prompt_tokens"])
    total = known["prompt_tokens"].sum()
    return float(known["cached_tokens"].sum() / total) if total else float("nan")


def cache_hit_rate_from_server(server: pd.DataFrame | None) -> float:
    """The run's hit rate from the scraped /metrics series: its first and last complete scrapes."""
    if server is None or server.empty:
        return float("nan")
    cols = [HITS, QUERIES]
    if not all(c in server.columns for c in cols):
        return float("nan")
    s = server.dropna(subset=cols)
    if len(s) < 2:
        return float("nan")
    rate = prefix_cache_hit_rate(s[cols].iloc[0].to_dict(), s[cols].iloc[-1].to_dict())
    return float("nan") if rate is None else float(rate)


def goodput(ok: pd.DataFrame, slo: Mapping[str, float], duration: float) -> float:
    """Requests per second that met every SLO (vLLM's ``request_goodput``; the rule: ``scheduler.slo.met``)."""
    if not slo or duration <= 0:
        return float("nan")
    return float(slo_met(ok, slo).sum() / duration)


def slo_met(rows: pd.DataFrame, slo: Mapping[str, float]) -> np.ndarray:
    """Per row: did the request meet every SLO (a failed one never does)."""
    return np.asarray(
        met(
            slo,
            rows["success"].to_numpy(dtype=bool),
            rows["ttft_s"].to_numpy(dtype=float),
            rows["tpot_s"].to_numpy(dtype=float),
            rows["e2e_s"].to_numpy(dtype=float),
        )
    )


def summarize(
    rows: pd.DataFrame,
    server: pd.DataFrame | None = None,
    slo: Mapping[str, float] | None = None,
    requested_rate: float | None = None,
    histograms: list[tuple[float, dict[str, Histogram]]] | None = None,
    ci_level: float = 0.95,
) -> dict:
    """The run's summary, keyed like vLLM's ``bench serve`` result JSON; with the server's histograms,
    its own figures beside the client's (``server_vs_client``); the headline latencies' intervals at
    ``ci_level`` (``<key>_ci``)."""
    ok = rows[rows["success"]]
    cancelled = int(rows["cancelled"].sum())
    failed = int((~rows["success"] & ~rows["cancelled"]).sum())
    dur = duration_s(rows[~rows["cancelled"]])
    out_tokens = float(ok["output_tokens"].sum())
    in_tokens = float(ok["prompt_tokens"].sum()) if "prompt_tokens" in ok else 0.0
    summary: dict[str, object] = {
        "completed": len(ok),
        "failed": failed,
        "cancelled": cancelled,
        "duration_s": dur,
        # vllm bench serve's name
        "duration": dur,
        "total_input_tokens": int(in_tokens),
        "total_output_tokens": int(out_tokens),
        "request_throughput": len(ok) / dur if dur else float("nan"),
        "output_throughput": out_tokens / dur if dur else float("nan"),
        "total_token_throughput": (in_tokens + out_tokens) / dur if dur else float("nan"),
    }
    latencies = {name: latency_values(ok, name) for name in HEADLINE}
    for name, values in latencies.items():
        summary.update(describe_ms(values, name))
    tps = ok["decode_tps"].dropna()
    summary["mean_decode_tps"] = float(tps.mean()) if len(tps) else float("nan")
    summary["median_decode_tps"] = float(tps.median()) if len(tps) else float("nan")
    summary.update(prefix_cache_summary(ok, server))
    if slo:
        summary["request_goodput"] = goodput(ok, slo, dur)
    summary.update(counted_requests(rows))
    summary.update(open_loop_summary(rows, ok, requested_rate))
    summary.update(reasoning_summary(ok))
    summary["ci_level"], summary["ci_method"] = ci_level, SINGLE_RUN_METHOD
    for name in HEADLINE:
        summary.update(intervals_ms(latencies[name], name, ci_level, PERCENTILES))
    summary.update(throughput_intervals(ok, dur, slo, summary, ci_level))
    if histograms:
        summary.update(server_vs_client(summary, histograms, -math.inf, math.inf))
    return summary


def counted_requests(rows: pd.DataFrame) -> dict[str, int]:
    """``warm_cache_requests``: those whose prompt's own part the server had cached (a cache warm from an
    earlier run); ``resent_requests``: those sent twice (the first send closed unanswered: the server may
    have read it too)."""
    return {
        "warm_cache_requests": int(rows["warm_cache"].sum()) if "warm_cache" in rows else 0,
        "resent_requests": int(rows["resent"].fillna(0).sum()) if "resent" in rows else 0,
    }


def throughput_intervals(
    ok: pd.DataFrame, dur: float, slo: Mapping[str, float] | None, summary: dict, level: float
) -> dict[str, list[float | None]]:
    """``<key>_ci`` of the throughputs, the goodput and the prefix-cache hit rate (``reports.intervals``)."""
    out = {
        "request_throughput_ci": rate_ci(len(ok), dur, level),
        "output_throughput_ci": total_rate_ci(ok["output_tokens"].dropna().to_numpy(dtype=float), dur, level),
    }
    if slo:
        out["request_goodput_ci"] = rate_ci(int(slo_met(ok, slo).sum()), dur, level)
    if "cached_tokens" in ok and "prompt_tokens" in ok:
        counted = ok.dropna(subset=["cached_tokens", "prompt_tokens"])
        out["prefix_cache_hit_rate_ci"] = ratio_of_sums_ci(
            counted["cached_tokens"].to_numpy(dtype=float),
            counted["prompt_tokens"].to_numpy(dtype=float),
            float(summary.get("prefix_cache_hit_rate", math.nan)),
            level,
        )
    return out


def prefix_cache_summary(ok: pd.DataFrame, server: pd.DataFrame | None) -> dict[str, float | int | str]:
    """The prefix cache's hit rate (the server's counters, else the rows' usage) and TTFT with and without a hit."""
    server_rate = cache_hit_rate_from_server(server)
    usage_rate = cache_hit_rate_from_usage(ok)
    hits = ok[ok["cached_tokens"].fillna(0) > 0]
    misses = ok[ok["cached_tokens"].fillna(0) <= 0]
    return {
        "prefix_cache_hit_rate": server_rate if not np.isnan(server_rate) else usage_rate,
        "prefix_cache_hit_rate_source": "server_metrics" if not np.isnan(server_rate) else "usage",
        "usage_prefix_cache_hit_rate": usage_rate,
        "cache_hit_requests": len(hits),
        "median_ttft_cache_hit_ms": float(hits["ttft_s"].median() * 1000) if len(hits) else float("nan"),
        "median_ttft_cache_miss_ms": float(misses["ttft_s"].median() * 1000) if len(misses) else float("nan"),
    }


# compared with the server's
CLIENT_FIGURES = {"ttft": "mean_ttft_ms", "itl": "mean_itl_ms", "e2el": "mean_e2el_ms"}


def server_vs_client(
    summary: dict, histograms: list[tuple[float, dict[str, Histogram]]], start: float, end: float
) -> dict:
    """The server's own latency figures between the last scrape at or before ``start`` (else the first)
    and the first at or after ``end`` (else the last), and the client's mean minus the server's for
    TTFT, ITL and E2E (``client_minus_server_ttft_ms`` …)."""
    if len(histograms) < 2:
        return {}
    times = [t for t, _ in histograms]
    first = max((i for i, t in enumerate(times) if t <= start), default=0)
    last = min((i for i, t in enumerate(times) if t >= end), default=len(times) - 1)
    if last <= first:
        return {}
    out = server_figures(histograms[first][1], histograms[last][1])
    for key, client_key in CLIENT_FIGURES.items():
        difference = client_minus_server(summary.get(client_key), out.get(f"server_mean_{key}_ms"))
        if difference is not None:
            out[f"client_minus_server_{key}_ms"] = difference
    return out


def reasoning_summary(ok: pd.DataFrame) -> dict[str, float]:
    """A reasoning model's run (some request had reasoning tokens): the time to the first answer token, the
    time per answer token after it, and the reasoning tokens in all."""
    if "reasoning_tokens" not in ok or not (ok["reasoning_tokens"].fillna(0) > 0).any():
        return {}
    answer_tokens = ok["output_tokens"] - ok["reasoning_tokens"].fillna(0)
    answer_tpot = (ok["e2e_s"] - ok["answer_ttft_s"]) / (answer_tokens - 1).where(answer_tokens > 1)
    return {
        **describe_ms(ok["answer_ttft_s"].to_numpy(dtype=float), "answer_ttft"),
        **describe_ms(answer_tpot.to_numpy(dtype=float), "answer_tpot"),
        "total_reasoning_tokens": int(ok["reasoning_tokens"].fillna(0).sum()),
    }


def open_loop_summary(rows: pd.DataFrame, ok: pd.DataFrame, requested_rate: float | None) -> dict[str, float | str]:
    """An open loop's proof of the schedule, its client queue time, and E2E including that queue."""
    if "scheduled_time" not in rows or not rows["scheduled_time"].notna().any():
        return {}
    proof = prove(rows["scheduled_time"].to_numpy(), rows["schedule_lag_s"].to_numpy())
    out: dict[str, float | str] = dict(proof.as_summary(requested_rate)) if proof is not None else {}
    out.update(describe_ms(ok["queue_s"].to_numpy(), "queue"))
    out.update(describe_ms((ok["e2e_s"] + ok["queue_s"].fillna(0.0)).to_numpy(), "e2el_including_queue"))
    out["schedule_warning"] = proof.warning() if proof is not None else ""
    return out


def steady_window(rows: pd.DataFrame, users: pd.DataFrame | None) -> tuple[float, float] | None:
    """Unix [start, end] of the run's steady state: from when the load reached its target (an open loop:
    its first due time; a closed loop: when Locust's user count first reached its highest, from its
    stats history, ``users``: ``time_s`` from the first send and ``users``) to when the drain began (the
    last send: no request starts after it). None without such a window."""
    starts = rows["start_time"].to_numpy(dtype=float)
    if starts.size == 0:
        return None
    t0 = float(starts.min())
    if "scheduled_time" in rows and rows["scheduled_time"].notna().any():
        start = float(rows["scheduled_time"].min())
    elif users is not None and not users.empty:
        start = t0 + float(users["time_s"][users["users"] >= users["users"].max()].min())
    else:
        return None
    end = float(starts.max())
    return (start, end) if end > start else None


def steady_summary(
    rows: pd.DataFrame,
    users: pd.DataFrame | None,
    slo: Mapping[str, float] | None,
    requested_rate: float | None,
    ci_level: float,
) -> dict[str, object]:
    """``steady``: the summary's figures over the steady window, with ``steady_window_s`` (seconds from the
    first send) and ``steady_requests``. Latencies are those of every request sent in the window, however
    long it ran (keeping only the ones that also ended in it would keep the short ones); throughputs
    count what arrived inside the window over its length (``window_throughput``)."""
    window = steady_window(rows, users)
    if window is None:
        return {}
    start, end = window
    inside = rows[(rows["start_time"] >= start) & (rows["start_time"] <= end)]
    if not inside["success"].any():
        return {}
    t0 = float(rows["start_time"].min())
    steady = summarize(inside, None, slo, requested_rate, None, ci_level)
    ok = rows[rows["success"]]
    steady.update(window_throughput(ok, start, end, ci_level))
    # the requests that met it and ended in the window, over its length
    if slo:
        ended = ok[(ok["start_time"] + ok["e2e_s"]).between(start, end)]
        good = int(slo_met(ended, slo).sum())
        steady["request_goodput"], steady["request_goodput_ci"] = (
            good / (end - start),
            rate_ci(good, end - start, ci_level),
        )
    return {"steady": steady, "steady_window_s": [start - t0, end - t0], "steady_requests": len(inside)}


def window_throughput(ok: pd.DataFrame, start: float, end: float, level: float) -> dict[str, object]:
    """Throughputs over [start, end] from what arrived inside it: requests that ended in it, output tokens
    that arrived in it (a request's first at its TTFT, the others spread evenly to its end: its chunks'
    own times are not kept per token), and the prompt tokens of requests whose first token came in it."""
    length = end - start
    first = (ok["start_time"] + ok["ttft_s"]).to_numpy(dtype=float)
    last = (ok["start_time"] + ok["e2e_s"]).to_numpy(dtype=float)
    tokens = ok["output_tokens"].fillna(0).to_numpy(dtype=float)
    decode = np.clip(np.minimum(last, end) - np.maximum(first, start), 0.0, None)
    span = last - first
    share = np.divide(decode, span, out=((first >= start) & (first <= end)).astype(float), where=span > 0)
    arrived = ((first >= start) & (first <= end)) * np.minimum(tokens, 1.0) + share * np.maximum(tokens - 1.0, 0.0)
    ended = int(((last >= start) & (last <= end)).sum())
    prompt = float(ok["prompt_tokens"].fillna(0).to_numpy(dtype=float)[(first >= start) & (first <= end)].sum())
    return {
        "duration_s": length,
        "duration": length,
        "request_throughput": ended / length,
        "request_throughput_ci": rate_ci(ended, length, level),
        "output_throughput": float(arrived.sum()) / length,
        "output_throughput_ci": total_rate_ci(arrived[arrived > 0], length, level),
        "total_token_throughput": (prompt + float(arrived.sum())) / length,
    }


def windows(rows: pd.DataFrame, width_s: float) -> pd.DataFrame:
    """p50/p95/p99 of TTFT and e2e over time in windows of ``width_s``, and completions per second.

    TTFT is placed at the moment the first token arrived, e2e at completion.
    """
    ok = rows[rows["success"]]
    if ok.empty:
        return pd.DataFrame()
    t0 = rows["start_time"].min()

    def window_of(t: pd.Series) -> pd.Series:
        return ((t - t0) // width_s) * width_s + width_s

    parts = {}
    for col, name, at in (
        ("ttft_s", "ttft", ok["start_time"] + ok["ttft_s"]),
        ("e2e_s", "e2e", ok["start_time"] + ok["e2e_s"]),
    ):
        g = ok[col].groupby(window_of(at))
        for q in (50, 95, 99):
            parts[f"p{q}_{name}_ms"] = g.quantile(q / 100.0) * 1000.0
    parts["requests_per_s"] = ok["e2e_s"].groupby(window_of(ok["start_time"] + ok["e2e_s"])).size() / width_s
    out = pd.DataFrame(parts).sort_index()
    out.index.name = "time_s"
    return out.reset_index()


def _server_in_window(server: pd.DataFrame | None, start: float, end: float) -> dict[str, float | None]:
    """The server's own figures over one level: hit rate from the counters' deltas between the last scrape
    at or before its start and the first at or after its end (the sweep scrapes at each boundary), mean
    KV-cache usage and the most requests waiting, from the scrapes taken within it."""
    out: dict[str, float | None] = {
        "server_prefix_cache_hit_rate": None,
        "mean_kv_cache_usage_perc": None,
        "max_num_requests_waiting": None,
    }
    if server is None or server.empty or "time" not in server:
        return out
    inside = server[(server["time"] >= start) & (server["time"] <= end)]
    if HITS in server and QUERIES in server:
        cols = [HITS, QUERIES]
        counted = server.dropna(subset=cols)
        before, after = counted[counted["time"] <= start], counted[counted["time"] >= end]
        first = before.iloc[-1] if len(before) else (counted.iloc[0] if len(counted) else None)
        last = after.iloc[0] if len(after) else (counted.iloc[-1] if len(counted) else None)
        if first is not None and last is not None and first["time"] < last["time"]:
            out["server_prefix_cache_hit_rate"] = prefix_cache_hit_rate(first[cols].to_dict(), last[cols].to_dict())
    for key, column, how in (
        ("mean_kv_cache_usage_perc", "kv_cache_usage_perc", "mean"),
        ("max_num_requests_waiting", "num_requests_waiting", "max"),
    ):
        if column in inside and inside[column].notna().any():
            out[key] = float(getattr(inside[column], how)())
    return out


def level_results(
    rows: pd.DataFrame, levels: pd.DataFrame, slo: Mapping[str, float], fixed_rate: float | None = None
) -> list[LevelResult]:
    """Each level of a sweep as the run judged it (``scheduler.levels.level_result``), from its rows and the
    sending windows the run logged; ``fixed_rate``: the rate of prefix-groups levels (``--request-rate``)."""
    results = []
    for item in levels.itertuples(index=False):
        level = Level(int(item.level), str(item.kind), float(item.value), str(item.purpose), fixed_rate)
        mine = rows[rows["level"].astype(str) == str(level.number)]
        logged = parse_windows(getattr(item, "windows", "") or "")
        results.append(
            level_result(
                level,
                mine["start_time"].to_numpy(dtype=float),
                mine["success"].to_numpy(dtype=bool),
                mine["cancelled"].to_numpy(dtype=bool),
                mine["ttft_s"].to_numpy(dtype=float),
                mine["tpot_s"].to_numpy(dtype=float),
                mine["e2e_s"].to_numpy(dtype=float),
                logged or [(float(item.start), float(item.send_end))],
                slo,
                bool(item.saturated),
                bool(item.resolved),
            )
        )
    return results


def levels_summary(
    rows: pd.DataFrame,
    levels: pd.DataFrame,
    server: pd.DataFrame | None,
    slo: Mapping[str, float],
    target: float,
    find_capacity: bool,
    fixed_rate: float | None = None,
    prefix_tokens: int = 0,
    histograms: list[tuple[float, dict[str, Histogram]]] | None = None,
) -> dict:
    """``levels`` (one object per level: the single-run keys plus the level's) and the capacity keys;
    for prefix-groups levels, each level's working set and hit rates, and the cliff (``working_set``)."""
    results = level_results(rows, levels, slo, fixed_rate)
    design = design_effect(results)
    out_levels = [
        _level_entry(rows, item, result, design, (slo, target), server, histograms, prefix_tokens)
        for item, result in zip(levels.itertuples(index=False), results, strict=True)
    ]
    by_prefixes = any(r.level.kind == "prefix-groups" for r in results)
    rates_swept = not find_capacity and any(r.level.kind == "rate" and r.level.purpose == "sweep" for r in results)
    out: dict = {
        "levels": out_levels,
        "cache_handling": sorted({str(c) for c in levels["cache"]}),
        "knee_rate": knee_rate(out_levels) if rates_swept else None,
    }
    if slo:
        out["slo_design_effect"] = design
    if by_prefixes:
        out["kv_cache_cliff_tokens"] = cliff(out_levels)
        out["kv_cache_capacity_estimate_tokens"] = capacity_estimate(out_levels)
    if slo and (find_capacity or any(r.level.kind == "rate" for r in results)):
        out.update(capacity_keys(results, out_levels, slo, target))
    return out


def _level_entry(
    rows: pd.DataFrame,
    item: Any,
    result: LevelResult,
    design: float,
    goal: tuple[Mapping[str, float], float],
    server: pd.DataFrame | None,
    histograms: list[tuple[float, dict[str, Histogram]]] | None,
    prefix_tokens: int,
) -> dict:
    """One level's object in ``levels``: its rows' summary and the level's own keys (``goal``: the SLO
    and its attainment target)."""
    slo, target = goal
    mine = rows[rows["level"].astype(str) == str(result.level.number)]
    summary = summarize(mine, None, slo)
    if histograms:
        summary.update(server_vs_client(summary, histograms, float(item.start), float(item.end)))
    ok = mine[mine["success"] & ~mine["cancelled"]]
    good = ok[slo_met(ok, slo)] if slo else ok
    dur = float(summary["duration_s"] or 0.0)
    per_s = 1 / dur if dur > 0 else float("nan")
    low, high = result.interval(design)
    summary.update(
        {
            "level": result.level.number,
            "kind": result.level.kind,
            "value": result.level.value,
            "purpose": result.level.purpose,
            "offered_rate": result.level.arrival_rate if result.level.open_loop else result.achieved_rate,
            "achieved_rate": result.achieved_rate,
            "slo_attainment": result.attainment if slo else None,
            "slo_attainment_ci": [low, high] if slo else None,
            "success_rate": None if slo else result.attainment,
            "saturated": result.saturated,
            "resolved": result.resolved,
            "verdict": verdict(result, target, design) if slo else None,
            "cache_handling": str(item.cache),
            "goodput_rps": len(good) * per_s,
            "goodput_tok_s": float(good["output_tokens"].sum()) * per_s,
            "start": float(item.start),
            "end": float(item.end),
            "repeat": None if pd.isna(item.repeat) else int(item.repeat),
        }
    )
    summary.update(_server_in_window(server, float(item.start), float(item.end)))
    if result.level.kind == "prefix-groups":
        summary.update(working_set(ok, int(result.level.value), prefix_tokens))
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}


def capacity_keys(results: list[LevelResult], levels: list[dict], slo: Mapping[str, float], target: float) -> dict:
    """The capacity search's answer (``scheduler.levels.capacity``) under its summary keys."""
    answer = capacity(results, target)
    at = next((lv for lv in levels if lv["level"] == answer.level), None)
    return dict(
        capacity_rps=answer.rate,
        capacity_rps_ci=list(answer.interval),
        slo=format_slo(slo),
        capacity_rps_bracket=list(answer.bracket),
        capacity_at_least=answer.at_least,
        capacity_goodput_tok_s=at["goodput_tok_s"] if at else None,
        capacity_goodput_rps=at["goodput_rps"] if at else None,
        slo_attainment_target=target,
    )


def knee_rate(levels: list[dict]) -> float | None:
    """The latency–throughput knee of a sweep over rates: the highest offered rate, in rising order,
    before the first level that is saturated or where the typical request queues: its median TTFT
    exceeds the lowest level's by more than half an unloaded request (half that level's median E2E).
    None without two levels, or where no level past the first queued (no knee was found)."""
    ordered = sorted((lv for lv in levels if lv.get("offered_rate") is not None), key=lambda lv: lv["offered_rate"])
    if len(ordered) < 2:
        return None
    base_ttft, base_e2e = ordered[0].get("median_ttft_ms"), ordered[0].get("median_e2el_ms")
    limit = base_ttft + base_e2e / 2 if base_ttft is not None and base_e2e is not None else math.inf
    knee = ordered[0]["offered_rate"]
    for lv in ordered[1:]:
        ttft = lv.get("median_ttft_ms")
        if lv.get("saturated") or (ttft is not None and ttft > limit):
            return float(knee)
        knee = lv["offered_rate"]
    return None


# the last bin holds a fully cached prompt
CACHED_SHARE_BINS = (0.0, 0.25, 0.5, 0.75, 1.0001)


def trace_summary(rows: pd.DataFrame, speed: float = 1.0) -> dict:
    """A replayed trace's prefix-cache efficiency: the hit rate an unbounded cache would reach on the
    requests replayed (``ideal_cached_tokens``) beside the one measured (``cached_tokens``), overall
    and per minute of the trace, and TTFT by the share of the prompt found cached."""
    if "trace_index" not in rows or not rows["trace_index"].notna().any():
        return {}
    ok = rows[rows["success"] & rows["trace_index"].notna()].dropna(subset=["prompt_tokens"])
    out: dict = {"trace_requests": int(rows["trace_index"].notna().sum())}
    if ok.empty:
        return out
    prompt = float(ok["prompt_tokens"].sum())
    measured = cache_hit_rate_from_usage(ok)
    known = ok["ideal_cached_tokens"].notna().any()
    ideal = float(ok["ideal_cached_tokens"].fillna(0).sum()) / prompt if known and prompt else math.nan
    out["ideal_prefix_cache_hit_rate"] = ideal
    out["measured_prefix_cache_hit_rate"] = measured
    out["prefix_cache_efficiency"] = measured / ideal if ideal and not math.isnan(ideal) else math.nan
    t0 = ok["scheduled_time"].min()
    minute = np.floor((ok["scheduled_time"] - t0) * speed / 60.0).astype(int)
    by_minute = []
    for m, part in ok.groupby(minute):
        tokens = float(part["prompt_tokens"].sum())
        m_ideal = float(part["ideal_cached_tokens"].fillna(0).sum()) / tokens if known and tokens else math.nan
        m_measured = cache_hit_rate_from_usage(part)
        by_minute.append(
            {
                "minute": int(m),
                "requests": len(part),
                "ideal_hit_rate": m_ideal,
                "measured_hit_rate": m_measured,
                "efficiency": m_measured / m_ideal if m_ideal else math.nan,
            }
        )
    out["prefix_cache_by_trace_minute"] = by_minute
    share = ok["cached_tokens"].fillna(0) / ok["prompt_tokens"]
    bins = pd.cut(share, CACHED_SHARE_BINS, right=False)
    out["ttft_by_cached_share"] = [
        {
            "cached_share_from": float(interval.left),
            "cached_share_to": min(float(interval.right), 1.0),
            "requests": len(part),
            "median_ttft_ms": float(part["ttft_s"].median() * 1e3) if len(part) else math.nan,
            "p99_ttft_ms": float(part["ttft_s"].quantile(0.99) * 1e3) if len(part) else math.nan,
        }
        for interval, part in ok.groupby(bins, observed=False)
    ]
    return out


# a level whose cache holds less than half of what it could is past the cliff
CLIFF_EFFICIENCY = 0.5
# below it, a level's working set no longer fits
FULL_EFFICIENCY = 0.9


def working_set(ok: pd.DataFrame, groups: int, prefix_tokens: int) -> dict:
    """A prefix-groups level: its shared prefixes' tokens, and the hit rate an unbounded cache would reach
    (every request after its group's first finds the prefix: the expected number of distinct groups in
    n random picks is G (1 - (1 - 1/G)^n)) beside the measured one."""
    n = len(ok)
    prompt = float(ok["prompt_tokens"].sum()) if n else 0.0
    first_seen = groups * (1 - (1 - 1 / groups) ** n) if n else 0.0
    ideal = (n - first_seen) * prefix_tokens / prompt if prompt else math.nan
    measured = cache_hit_rate_from_usage(ok) if n else math.nan
    return {
        "prefix_groups": groups,
        "working_set_tokens": groups * prefix_tokens,
        "ideal_prefix_cache_hit_rate": ideal,
        "measured_prefix_cache_hit_rate": measured,
        "prefix_cache_efficiency": measured / ideal if ideal else math.nan,
    }


def cliff(levels: list[dict]) -> list[float] | None:
    """The KV working-set cliff: [the largest working set whose cache efficiency held at least
    ``CLIFF_EFFICIENCY``, the smallest beyond it that fell below]: the cache the server really has lies
    between (None when every level held or none did)."""
    ordered = sorted(
        (lv for lv in levels if lv.get("prefix_cache_efficiency") is not None), key=lambda lv: lv["working_set_tokens"]
    )
    held = [lv["working_set_tokens"] for lv in ordered if lv["prefix_cache_efficiency"] >= CLIFF_EFFICIENCY]
    fell = [lv["working_set_tokens"] for lv in ordered if lv["prefix_cache_efficiency"] < CLIFF_EFFICIENCY]
    if not held or not fell:
        return None
    beyond = [w for w in fell if w > max(held)]
    return [float(max(held)), float(min(beyond))] if beyond else None


def capacity_estimate(levels: list[dict]) -> float | None:
    """The cache's size in tokens as the levels that outgrew it show it: under reuse spread evenly over
    the prefixes, an LRU cache of C tokens holds about C / W of a working set of W > C, so each such
    level (efficiency below ``FULL_EFFICIENCY``) estimates C as efficiency x W; the median of them."""
    estimates = [
        lv["prefix_cache_efficiency"] * lv["working_set_tokens"]
        for lv in levels
        if lv.get("prefix_cache_efficiency") is not None and lv["prefix_cache_efficiency"] < FULL_EFFICIENCY
    ]
    return float(np.median(estimates)) if estimates else None


def per_host(rows: pd.DataFrame, slo: Mapping[str, float] | None = None) -> dict:
    """``hosts``: each host's single-run keys, when the run spread its requests over several (``-H a,b``)."""
    return per_value(rows, "host", "hosts", slo)


def per_model(rows: pd.DataFrame, slo: Mapping[str, float] | None = None) -> dict:
    """``models``: each model's single-run keys (its prefix-cache hit rate from the usage), when the run asked
    for several (``--model a:0.7,b:0.3``)."""
    return per_value(rows, "model", "models", slo)


def per_image_count(rows: pd.DataFrame, slo: Mapping[str, float] | None = None) -> dict:
    """``images``: the figures of the requests with each number of images, when they carried several."""
    return per_value(rows, "image_count", "images", slo)


def per_value(rows: pd.DataFrame, column: str, key: str, slo: Mapping[str, float] | None) -> dict:
    """``{key: {value: summary}}`` over the rows of each value of ``column``, when there are several."""
    if column not in rows:
        return {}
    values = sorted((v for v in rows[column].dropna().unique() if v != ""), key=lambda v: (str(type(v)), v))
    if len(values) < 2:
        return {}
    return {key: {_label(v): summarize(rows[rows[column] == v], None, slo) for v in values}}


def _label(value: object) -> str:
    """A value as a summary key: 2, not 2.0."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def per_replica(replicas: list) -> dict:
    """``replicas``: each replica's own figures from its ``/metrics`` (hit rate, load, KV usage, latency
    histograms) between its first and last scrape, and ``replica_skew``: max / mean over the replicas of
    the requests each served (``load``) and of their hit rates."""
    if len(replicas) < 2:
        return {}
    out: dict = {}
    for replica in replicas:
        figures: dict = {}
        server = replica.server
        if server is not None and len(server) >= 2:
            figures["server_prefix_cache_hit_rate"] = _server_in_window(
                server, float(server["time"].min()), float(server["time"].max())
            )["server_prefix_cache_hit_rate"]
            for column in ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc"):
                if column in server and server[column].notna().any():
                    figures[f"mean_{column}"] = float(server[column].mean())
        if len(replica.histograms) >= 2:
            figures.update(server_figures(replica.histograms[0][1], replica.histograms[-1][1]))
        out[replica.url] = figures
    loads = [f.get("server_requests") for f in out.values()]
    rates = [f.get("server_prefix_cache_hit_rate") for f in out.values()]
    return {"replicas": out, "replica_skew": {"load": _skew(loads), "prefix_cache_hit_rate": _skew(rates)}}


def _skew(values: list) -> float | None:
    """max / mean (1: even), None when a replica lacks the figure or all are zero."""
    if not values or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return None
    mean = sum(values) / len(values)
    return max(values) / mean if mean > 0 else None


def per_stage(
    rows: pd.DataFrame,
    histograms: list[tuple[float, dict[str, Histogram]]] | None = None,
    slo: Mapping[str, float] | None = None,
) -> dict:
    """``stages``: each ``--stages`` step's single-run keys from its rows, and the server's figures between
    the scrapes around it (the run scrapes as each stage ends; a request still in flight when its stage
    ended counts in the next stage's server figures)."""
    if "stage" not in rows:
        return {}
    stages = sorted((s for s in rows["stage"].astype(str).unique() if s), key=lambda s: float(s))
    if len(stages) < 2:
        return {}
    out = {}
    for stage in stages:
        mine = rows[rows["stage"].astype(str) == stage]
        summary = summarize(mine, None, slo)
        if histograms:
            start = float(mine["start_time"].min())
            end = float((mine["start_time"] + mine["e2e_s"].fillna(0.0)).max())
            summary.update(server_vs_client(summary, histograms, start, end))
        out[stage] = summary
    return {"stages": out}
