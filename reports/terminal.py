"""The results in the terminal, as ``vllm bench serve`` prints its own: the answers first (the report's
sentences, with their intervals), then the headline figures under vLLM's labels, each to the digits a
run knows and with its interval where the summary has one. Pure: a summary in, text out."""

from __future__ import annotations

from reports.answers import figure

WIDTH = 60
# (label, summary key, unit) in vllm bench serve's order; a section header is (title, None, "")
LINES: tuple[tuple[str, str | None, str], ...] = (
    ("Successful requests", "completed", ""),
    ("Failed requests", "failed", ""),
    ("Resent requests", "resent_requests", ""),
    ("Benchmark duration (s)", "duration_s", ""),
    ("Total input tokens", "total_input_tokens", ""),
    ("Total generated tokens", "total_output_tokens", ""),
    ("Request throughput (req/s)", "request_throughput", ""),
    ("Request goodput (req/s)", "request_goodput", ""),
    ("Output token throughput (tok/s)", "output_throughput", ""),
    ("Total token throughput (tok/s)", "total_token_throughput", ""),
    ("Prefix cache hit rate (%)", "prefix_cache_hit_rate", "%"),
    ("Time to First Token", None, ""),
    ("Mean TTFT (ms)", "mean_ttft_ms", ""),
    ("Median TTFT (ms)", "median_ttft_ms", ""),
    ("P99 TTFT (ms)", "p99_ttft_ms", ""),
    ("Time per Output Token (excl. 1st token)", None, ""),
    ("Mean TPOT (ms)", "mean_tpot_ms", ""),
    ("Median TPOT (ms)", "median_tpot_ms", ""),
    ("P99 TPOT (ms)", "p99_tpot_ms", ""),
    ("Inter-token Latency", None, ""),
    ("Mean ITL (ms)", "mean_itl_ms", ""),
    ("Median ITL (ms)", "median_itl_ms", ""),
    ("P99 ITL (ms)", "p99_itl_ms", ""),
    ("End-to-end Latency", None, ""),
    ("Mean E2EL (ms)", "mean_e2el_ms", ""),
    ("Median E2EL (ms)", "median_e2el_ms", ""),
    ("P99 E2EL (ms)", "p99_e2el_ms", ""),
)


def results_block(name: str, summary: dict, sentences: list[str]) -> str:
    """The block: a title naming the run, its answers, and the figures it has."""
    out = [f" Results: {name} ".center(WIDTH, "=")]
    out.extend(sentences)
    for label, key, unit in LINES:
        if key is None:
            out.append(f" {label} ".center(WIDTH, "-"))
            continue
        value = summary.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        shown = f"{value:,}" if isinstance(value, int) else figure(summary, key, "", 100.0 if unit == "%" else 1.0)
        if shown:
            out.append(f"{label + ':':<42}{shown}")
    out.append("=" * WIDTH)
    return "\n".join(out)
