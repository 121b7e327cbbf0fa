"""The report's first lines: what a run answers, in sentences, each figure with its interval where the summary
has one. Pure: a summary in, sentences out (``reports/html.py`` puts them first)."""

from __future__ import annotations

import math

from reports.sessions import retention_sentence, session_sentence
from reports.speedup import speedup_sentence
from scheduler.levels import Capacity, capacity_sentence


def _num(value: float, digits: int = 3) -> str:
    """A figure to ``digits`` significant digits (no more than a load test knows)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    places = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{places}f}"


def figure(summary: dict, key: str, unit: str = "", scale: float = 1.0) -> str | None:
    """``key``'s value with its unit and, where the summary has ``key_ci``, its interval (None: no value)."""
    value = summary.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    text = f"{_num(value * scale)}{unit}"
    ci = summary.get(f"{key}_ci")
    if isinstance(ci, list) and len(ci) == 2 and any(isinstance(v, int | float) for v in ci):
        level = summary.get("ci_level") or 0.95
        low, high = (_num(v * scale) if isinstance(v, int | float) else None for v in ci)
        if low is not None and high is not None:
            text += f" ({level:.0%} CI {low}–{high})"
        # too few requests for the other bound (a p99 of a short run)
        else:
            side = f"from {low}, no bound above" if low is not None else f"up to {high}, no bound below"
            text += f" ({level:.0%} CI {side})"
    return text


def answers(summary: dict, input_tokens: int | None = None) -> list[str]:
    """The run's answers: throughput, latency, the prefix cache (and what sharing bought, from a prefix-tokens
    sweep), failures; a sweep's capacity and knee; a trace's cache efficiency; energy and cost."""
    return [
        s
        for s in (
            _load(summary),
            _latency(summary),
            _cache(summary),
            speedup_sentence(summary, input_tokens),
            session_sentence(summary),
            retention_sentence(summary),
            _levels(summary),
            _trace(summary),
            _energy(summary),
            _failures(summary),
        )
        if s
    ]


def _load(s: dict) -> str:
    done, duration = s.get("completed"), s.get("duration_s")
    if not done or not duration:
        return ""
    parts = [f"{done:,} requests completed in {_num(duration)} s"]
    for key, unit in (("request_throughput", " requests/s"), ("output_throughput", " output tokens/s")):
        shown = figure(s, key, unit)
        if shown:
            parts.append(shown)
    return ": ".join(parts[:1]) + (": " + ", ".join(parts[1:]) if len(parts) > 1 else "") + "."


def _latency(s: dict) -> str:
    sentences = []
    for name, label in (("ttft", "Time to first token"), ("tpot", "Time per output token")):
        p50, p99 = figure(s, f"median_{name}_ms", " ms"), figure(s, f"p99_{name}_ms", " ms")
        if p50 and p99:
            sentences.append(f"{label}: p50 {p50}, p99 {p99}.")
    answer = figure(s, "median_answer_ttft_ms", " ms")
    if answer:
        sentences.append(f"The first answer token (after the reasoning): p50 {answer}.")
    return " ".join(sentences)


def _cache(s: dict) -> str:
    rate = figure(s, "prefix_cache_hit_rate", "%", 100.0)
    if rate is None:
        return ""
    source = "the server's counters" if s.get("prefix_cache_hit_rate_source") == "server_metrics" else "the usage"
    text = f"Prefix cache: {rate} of prompt tokens were cached ({source})"
    hit, miss = s.get("median_ttft_cache_hit_ms"), s.get("median_ttft_cache_miss_ms")
    if isinstance(hit, int | float) and isinstance(miss, int | float) and s.get("cache_hit_requests"):
        text += f"; TTFT p50 {_num(hit)} ms with some prompt cached, {_num(miss)} ms with none"
    return text + "."


def _levels(s: dict) -> str:
    sentences = []
    rate, ci, bracket = s.get("capacity_rps"), s.get("capacity_rps_ci"), s.get("capacity_rps_bracket")
    if isinstance(rate, int | float) and isinstance(ci, list) and isinstance(bracket, list):
        answer = Capacity(
            rate,
            (ci[0] or 0.0, ci[1]),
            (bracket[0] or 0.0, bracket[1]),
            None,
            bool(s.get("capacity_at_least")),
            float(s.get("slo_design_effect") or 1.0),
        )
        target = float(s.get("slo_attainment_target") or 0.99)
        sentences.append(capacity_sentence(answer, str(s.get("slo") or "the SLO"), target))
    knee = s.get("knee_rate")
    if isinstance(knee, int | float):
        sentences.append(f"Latency starts to climb faster than throughput past {_num(knee)} requests/s (the knee).")
    return " ".join(sentences)


def _trace(s: dict) -> str:
    measured, ideal = s.get("measured_prefix_cache_hit_rate"), s.get("ideal_prefix_cache_hit_rate")
    if not isinstance(measured, int | float) or not isinstance(ideal, int | float) or not ideal:
        return ""
    return (
        f"Trace replay: the server cached {_num(100 * measured)}% of prompt tokens against an ideal cache's "
        f"{_num(100 * ideal)}% (efficiency {_num(100 * measured / ideal)}%)."
    )


def _energy(s: dict) -> str:
    parts = []
    joules = figure(s, "joules_per_output_token", " J per output token")
    if joules:
        power = figure(s, "mean_gpu_power_w", " W")
        parts.append(f"Energy: {joules}" + (f" at {power} mean GPU power" if power else ""))
    usd = figure(s, "usd_per_million_output_tokens")
    if usd:
        parts.append(f"cost: {usd} USD per million output tokens")
    return ("; ".join(parts) + ".") if parts else ""


def _failures(s: dict) -> str:
    failed, cancelled = s.get("failed") or 0, s.get("cancelled") or 0
    if not failed and not cancelled:
        return "No request failed." if s.get("completed") else ""
    text = f"{failed:,} requests failed" if failed else "No request failed"
    return text + (f", {cancelled:,} were cut off by the end of the run." if cancelled else ".")
