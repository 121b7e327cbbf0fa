"""Pure statistics over per-request rows, with vLLM ``bench serve`` definitions and key names.

Percentiles interpolate linearly, as numpy does by default. Failed and
cancelled requests are left out of the latency statistics. ITL gaps are
pooled over all successful requests before any statistic, as vLLM does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmclient.server_metrics import HITS, QUERIES, prefix_cache_hit_rate
from scheduler.proof import prove

PERCENTILES = (50, 90, 99)


def pooled_itl(itl_column: pd.Series) -> np.ndarray:
    """All inter-token gaps of the given rows, in seconds, as one array (C-speed parse)."""
    text = " ".join(itl_column.tolist())
    if not text.strip():
        return np.empty(0)
    return np.fromstring(text, sep=" ")  # text mode: parsed in C, no per-gap Python objects


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


def parse_slo(text: str | None) -> dict[str, float]:
    """``ttft_ms=500,tpot_ms=50,e2el_ms=10000`` -> {"ttft_ms": 500.0, ...}."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in ("ttft_ms", "tpot_ms", "e2el_ms"):
            raise ValueError(f"--slo takes ttft_ms=…,tpot_ms=…,e2el_ms=…; got {part!r}")
        try:
            out[key] = float(value)
        except ValueError:
            raise ValueError(f"--slo value for {key} must be a number, got {value!r}") from None
    return out


def goodput(ok: pd.DataFrame, slo: dict[str, float], duration: float) -> float:
    """Requests per second that met every SLO (vLLM's ``request_goodput``)."""
    if not slo or duration <= 0:
        return float("nan")
    mask = pd.Series(True, index=ok.index)
    column = {"ttft_ms": "ttft_s", "tpot_ms": "tpot_s", "e2el_ms": "e2e_s"}
    for key, limit in slo.items():
        values = ok[column[key]] * 1000.0
        mask &= values.le(limit) | (values.isna() & (key == "tpot_ms"))
    return float(mask.sum() / duration)


def summarize(
    rows: pd.DataFrame,
    server: pd.DataFrame | None = None,
    slo: dict[str, float] | None = None,
    requested_rate: float | None = None,
) -> dict:
    """The run's summary, keyed like vLLM's ``bench serve`` result JSON."""
    ok = rows[rows["success"]]
    cancelled = int(rows["cancelled"].sum())
    failed = int((~rows["success"] & ~rows["cancelled"]).sum())
    dur = duration_s(rows[~rows["cancelled"]])
    out_tokens = float(ok["output_tokens"].sum())
    in_tokens = float(ok["prompt_tokens"].sum()) if "prompt_tokens" in ok else 0.0
    summary: dict[str, float | int | str] = {
        "completed": len(ok),
        "failed": failed,
        "cancelled": cancelled,
        "duration_s": dur,
        "total_input_tokens": int(in_tokens),
        "total_output_tokens": int(out_tokens),
        "request_throughput": len(ok) / dur if dur else float("nan"),
        "output_throughput": out_tokens / dur if dur else float("nan"),
        "total_token_throughput": (in_tokens + out_tokens) / dur if dur else float("nan"),
    }
    summary.update(describe_ms(ok["ttft_s"].to_numpy(), "ttft"))
    summary.update(describe_ms(ok["tpot_s"].to_numpy(), "tpot"))
    summary.update(describe_ms(pooled_itl(ok["itl_s"]), "itl"))
    summary.update(describe_ms(ok["e2e_s"].to_numpy(), "e2el"))
    tps = ok["decode_tps"].dropna()
    summary["mean_decode_tps"] = float(tps.mean()) if len(tps) else float("nan")
    summary["median_decode_tps"] = float(tps.median()) if len(tps) else float("nan")
    server_rate = cache_hit_rate_from_server(server)
    usage_rate = cache_hit_rate_from_usage(ok)
    summary["prefix_cache_hit_rate"] = server_rate if not np.isnan(server_rate) else usage_rate
    summary["prefix_cache_hit_rate_source"] = "server_metrics" if not np.isnan(server_rate) else "usage"
    summary["usage_prefix_cache_hit_rate"] = usage_rate
    hits = ok[ok["cached_tokens"].fillna(0) > 0]
    misses = ok[ok["cached_tokens"].fillna(0) <= 0]
    summary["cache_hit_requests"] = len(hits)
    summary["median_ttft_cache_hit_ms"] = float(hits["ttft_s"].median() * 1000) if len(hits) else float("nan")
    summary["median_ttft_cache_miss_ms"] = float(misses["ttft_s"].median() * 1000) if len(misses) else float("nan")
    if slo:
        summary["request_goodput"] = goodput(ok, slo, dur)
    summary.update(open_loop_summary(rows, ok, requested_rate))
    return summary


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
