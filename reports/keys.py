"""The figures a run's summary (``PREFIX_summary.json``) holds, each named once with what it is: the
names ``--check`` may use (refused before a run when unknown), and the reference the docs are built from.

A latency figure is ``<stat>_<latency>_ms`` (``p99_ttft_ms``); a headline figure has ``<key>_ci`` beside
it, its interval at the summary's ``ci_level``. ``steady.<key>`` is the same figure over the steady state.
"""

from __future__ import annotations

import difflib
import re

from llmclient.server_metrics import HISTOGRAMS, QUANTILES

LATENCIES = {
    "ttft": "time to first token: from just before the request is sent to its first content token",
    "tpot": "time per output token after the first: (E2E − TTFT) / (output tokens − 1), per request",
    "itl": "inter-token latency: every gap between content chunks, pooled over requests",
    "e2el": "end-to-end latency: from just before the send to the last byte",
}
STATS = {
    "mean": "mean",
    "median": "median",
    "std": "standard deviation",
    "p90": "90th percentile",
    "p99": "99th percentile",
}
REASONING_LATENCIES = {
    "answer_ttft": "reasoning models: time to the first answer token (not reasoning), from just before the send",
    "answer_tpot": "reasoning models: time per answer token after the first answer token, per request",
}
OPEN_LOOP_LATENCIES = {
    "queue": "open loop: time a due request waited in the client for a free slot (--max-concurrency)",
    "e2el_including_queue": "open loop: E2E latency plus the client's queue time",
}

FIGURES: dict[str, str] = {
    "completed": "requests that succeeded",
    "failed": "requests that failed (not counting cancelled ones)",
    "cancelled": "requests cut off by the end of the run",
    "duration_s": "seconds from the first request's start to the last completion",
    "duration": "duration_s under vllm bench serve's name",
    "total_input_tokens": "prompt tokens of the successful requests (the server's usage)",
    "total_output_tokens": "output tokens of the successful requests (the server's usage)",
    "total_reasoning_tokens": "reasoning models: the reasoning tokens among them",
    "request_throughput": "successful requests per second over duration_s",
    "output_throughput": "output tokens per second over duration_s",
    "total_token_throughput": "prompt and output tokens per second over duration_s",
    "request_goodput": "requests per second that met every --slo",
    "mean_decode_tps": "mean of each request's decode speed (output tokens after the first per second)",
    "median_decode_tps": "median of each request's decode speed",
    "prefix_cache_hit_rate": "share of prompt tokens the server had in its prefix cache",
    "sessions": "sessions: how many sessions sent at least one request",
    "history_kept": "sessions: the share of the later turns' ideal cached tokens (their history's whole blocks) "
    "the server reported cached, each turn counted up to its ideal",
    "history_kept_turns": "sessions: the share of later turns whose whole history the server had cached",
    "usage_prefix_cache_hit_rate": "prefix_cache_hit_rate from the responses' usage (cached_tokens)",
    "cache_hit_requests": "requests with some cached prompt tokens",
    "median_ttft_cache_hit_ms": "median TTFT of requests with cached prompt tokens",
    "median_ttft_cache_miss_ms": "median TTFT of requests without",
    "warm_cache_requests": "requests whose own prompt part was already cached (a cache warm from an earlier run)",
    "resent_requests": "requests sent twice (column resent): the server may have received each of them twice",
    "requested_rate": "open loop: the configured request rate",
    "scheduled_rate": "open loop: the rate of the schedule the client drew",
    "achieved_rate": "open loop: the rate at which requests were really sent",
    "schedule_lag_p50_ms": "open loop: median delay between a request's due time and its send",
    "schedule_lag_p99_ms": "open loop: 99th percentile of that delay",
    "schedule_lag_max_ms": "open loop: the largest such delay",
    "ci_level": "the confidence level of every <key>_ci (--ci-level)",
    "steady_requests": "requests sent after the load reached its target and before the drain began (the last send)",
    "server_requests": "requests the server's own histograms counted during the run",
    "client_cpu_max_share": "the busiest client process's share of a core",
    "client_cpu_bound": "true when a client process was busy over 90% of a core for over 10% of the run",
    "capacity_rps": "the request rate at which the share meeting --slo falls to --slo-attainment: estimated from "
    "every rate level (capacity_rps_ci: its 95% confidence interval, null at the top where no rate fell below)",
    "capacity_at_least": "true when no rate tried fell below --slo-attainment: the capacity is at least capacity_rps",
    "slo_design_effect": "how many requests count as one independent one in the SLO intervals (misses come in bursts)",
    "capacity_goodput_rps": "goodput (requests/s) of the highest level that met --slo-attainment",
    "capacity_goodput_tok_s": "goodput (output tokens/s) of that level",
    "knee_rate": "a sweep over rates: the highest rate before the median TTFT climbs (null: none found)",
    "kv_cache_capacity_estimate_tokens": "prefix-groups sweep: the prefix cache's working size, estimated",
    "trace_requests": "trace replay: requests replayed",
    "ideal_prefix_cache_hit_rate": "trace replay: the hit rate an unbounded prefix cache would reach",
    "measured_prefix_cache_hit_rate": "trace replay: the hit rate the server reached",
    "prefix_cache_efficiency": "trace replay: measured over ideal hit rate",
    "server_prefix_cache_efficiency": "trace replay: the server's own hit rate over the ideal",
    "server_span_requests": "--otlp-port: requests joined to the server's span (their server_* columns)",
    "median_client_minus_server_span_ttft_ms": "--otlp-port: median of each request's client TTFT minus its span's, ms",
    "p99_client_minus_server_span_ttft_ms": "--otlp-port: 99th percentile of that difference, ms",
    "energy_j": "--telemetry-url: the GPUs' energy over duration_s, J (energy_j_bounds: integrated power's bracket)",
    "mean_gpu_power_w": "--telemetry-url: energy_j over duration_s, W (all the exporters' GPUs together)",
    "gpu_utilization": "--telemetry-url: the GPUs' mean utilization over the run, 0 to 1",
    "joules_per_output_token": "--telemetry-url: energy_j per output token",
    "run_cost_usd": "--gpu-hour-cost with --gpus: the GPUs' hours over duration_s at that price",
    "usd_per_million_output_tokens": "--gpu-hour-cost: run_cost_usd per million output tokens",
    "usd_per_million_total_tokens": "--gpu-hour-cost: run_cost_usd per million prompt and output tokens",
}
for _lat, _what in {**LATENCIES, **REASONING_LATENCIES, **OPEN_LOOP_LATENCIES}.items():
    for _stat, _how in STATS.items():
        FIGURES[f"{_stat}_{_lat}_ms"] = f"{_how} of the {_what}, ms"
for _h in HISTOGRAMS:
    FIGURES[f"server_mean_{_h}_ms"] = f"the server's own mean {_h} time (its histogram), ms"
    for _q in QUANTILES:
        FIGURES[f"server_p{_q}_{_h}_ms"] = f"the server's {_q}th percentile {_h} time, interpolated in its bucket, ms"
for _lat in ("ttft", "itl", "e2el"):
    FIGURES[f"client_minus_server_{_lat}_ms"] = f"the client's mean {_lat} minus the server's"
# keys that are not figures to --check: words, lists and objects, each named once here
DESCRIPTIVE: dict[str, str] = {
    "ci_method": "how the intervals were computed (one run's requests taken as independent, or across --repeat)",
    "prefix_cache_hit_rate_source": "where prefix_cache_hit_rate came from: server_metrics (its counters) or usage",
    "server_metrics_missing": "the /metrics series the server did not expose",
    "steady_window_s": "[start, end] of the steady state, seconds from the first send",
    "schedule_warning": "open loop: why the schedule was not kept, when it was not",
    "slo": "--slo as the capacity search judged it (ttft_ms=…,tpot_ms=…)",
    "slo_attainment_target": "--slo-attainment: the share of requests that must meet --slo",
    "capacity_rps_bracket": "the search's bracket: [highest rate whose share reached the target, lowest above it "
    "that did not, or null]; no interval",
    "levels": "a sweep's or capacity search's levels, one object each (their figures, offered_rate, achieved_rate: "
    "requests that ended per second within the level's windows, slo_attainment with slo_attainment_ci, or "
    "success_rate without --slo, verdict)",
    "cache_handling": "how the prefix cache was prepared before each level",
    "repeats": "--repeat: each repetition's headline figures",
    "energy_j_bounds": "--telemetry-url: [low, high] of energy_j where it was integrated from power samples",
    "gpu_energy_source": "--telemetry-url: where energy_j came from (the energy counter, or power integrated)",
    "by_turn": "sessions: one object per turn number (requests, ttft_p50_ms and ttft_p99_ms with their _ci, "
    "tpot_p50_ms, mean prompt_tokens, cached_tokens and ideal_cached_tokens, hit_rate, history_kept, "
    "history_kept_turns with its _ci)",
    "by_turn_by_host": "sessions with -H a,b: by_turn for each host's requests (did a session stay where its "
    "history was?)",
    "retention": "--sweep think-time: per think time (think_time_s), the later turns, the share whose history "
    "was kept (kept) and its Wilson interval (kept_ci)",
    "retention_gap_s_bracket": "--sweep think-time: [the last think time at which at least half the histories "
    "were kept, the first after it at which fewer were] (null: none such)",
    "kv_cache_cliff_tokens": "prefix-groups sweep: [largest working set the cache held, smallest it did not], tokens",
    "trace_ideal_prefix_cache_hit_rate": "trace replay: the ideal hit rate over the whole trace file",
    "server_pXX_<h>_ms_bounds": "[low, high] of the histogram bucket server_pXX_<h>_ms was interpolated in (high "
    "null: the last bucket); the page shows the bucket where it is wider than half the value",
}
SCOPES = {
    "steady": "the same figures over the steady state (steady_window_s)",
    "models": "--model NAME:WEIGHT,…: models.NAME.<key>, the same figures over the requests that asked for NAME",
    "hosts": "-H a,b: hosts.HOST.<key>, the same figures over the requests sent to HOST",
    "images": "requests with different numbers of images: images.N.<key>, the same figures over those with N",
    "prefix_cache_speedup": "--sweep prefix-tokens: how many times faster the most shared level is than the "
    "unshared one, for mean/median/p90/p99 TTFT, mean E2E, request and output throughput",
}


def unknown_key_error(key: str) -> str | None:
    """Why ``key`` names no figure a summary can hold (None: it can), in one line."""
    scope, _, name = key.rpartition(".")
    if (not scope or scope.split(".", 1)[0] in SCOPES) and name in FIGURES:
        return None
    near = difflib.get_close_matches(name, FIGURES, n=3, cutoff=0.75)
    hint = f" (did you mean {', '.join(near)}?)" if near else " (the figures are the keys of PREFIX_summary.json)"
    return f"--check: no summary figure is called {key!r}{hint}"


def undocumented(summary: dict) -> list[str]:
    """The keys of a summary that no table here describes (a test keeps this empty)."""
    bounds = re.compile(r"^server_p\d+_\w+_ms_bounds$")
    return [
        k
        for k in summary
        if k not in FIGURES
        and k not in SCOPES
        and k not in DESCRIPTIVE
        and not k.endswith("_ci")
        and not bounds.match(k)
        and k not in BREAKDOWN_KEYS
    ]


BREAKDOWN_KEYS = (
    "hosts",
    "replicas",
    "replica_skew",
    "stages",
    "prefix_cache_speedup",
    "prefix_cache_by_trace_minute",
    "ttft_by_cached_share",
)
