"""The results in the terminal, as ``vllm bench serve`` prints its own: the answers first (the report's
sentences, with their intervals), then the headline figures under vLLM's labels, each to the digits a
run knows and with its interval where the summary has one. Pure: a summary in, text out."""

from __future__ import annotations

from reports.answers import figure

WIDTH = 60
# vllm bench serve's latency sections: (title, its abbreviation, the summary's name)
SECTIONS = (
    ("Time to First Token", "TTFT", "ttft"),
    ("Time per Output Token (excl. 1st token)", "TPOT", "tpot"),
    ("Inter-token Latency", "ITL", "itl"),
    ("End-to-end Latency", "E2EL", "e2el"),
)
HEADLINE_LINES = (
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
)
STATS = (("Mean", "mean"), ("Median", "median"), ("P99", "p99"))
# (label, summary key, unit) in vllm bench serve's order; a section header is (title, None, "")
LINES: tuple[tuple[str, str | None, str], ...] = (
    *HEADLINE_LINES,
    *(
        line
        for title, short, name in SECTIONS
        for line in ((title, None, ""), *((f"{label} {short} (ms)", f"{stat}_{name}_ms", "") for label, stat in STATS))
    ),
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
