"""vLLM's Prometheus metrics, kept by the emulator and rendered as text."""

from __future__ import annotations

import bisect
import time
from typing import Any

# the slow end vLLM's TTFT and ITL buckets share
SLOW = [0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0]
TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, *SLOW, 160.0, 640.0, 2560.0]
ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, *SLOW]
E2E_BUCKETS = [
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
]


class Histogram:
    def __init__(self, buckets: list[float]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, n: int = 1) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += n
        self.sum += value * n
        self.count += n

    def render(self, name: str, labels: str) -> list[str]:
        lines = [f"# HELP {name} Histogram of {name.split(':', 1)[1]}.", f"# TYPE {name} histogram"]
        acc = 0
        for bound, c in zip(self.buckets, self.counts, strict=False):
            acc += c
            lines.append(f'{name}_bucket{{{labels},le="{bound}"}} {acc}')
        lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {self.count}')
        lines.append(f"{name}_count{{{labels}}} {self.count}")
        lines.append(f"{name}_sum{{{labels}}} {self.sum}")
        return lines


class Metrics:
    def __init__(self, model: str) -> None:
        self.labels = f'engine="0",model_name="{model}"'
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.cache_queries = 0
        self.cache_hits = 0
        self.success: dict[str, int] = {"stop": 0, "length": 0, "abort": 0}
        self.ttft = Histogram(TTFT_BUCKETS)
        self.itl = Histogram(ITL_BUCKETS)
        self.e2e = Histogram(E2E_BUCKETS)
        # vLLM's request phases, on its request-latency buckets: waiting (received -> scheduled), prefill
        # (scheduled -> first token), decode (first -> last token)
        self.queue = Histogram(E2E_BUCKETS)
        self.prefill = Histogram(E2E_BUCKETS)
        self.decode = Histogram(E2E_BUCKETS)
        self.started = time.time()

    def on_admit(self, prompt_len: int, cached: int) -> None:
        self.cache_queries += prompt_len
        self.cache_hits += cached
        self.prompt_tokens += prompt_len

    def observe_itl(self, value: float, n: int) -> None:
        self.itl.observe(value, n)

    def on_first_token(self, ttft: float) -> None:
        self.ttft.observe(ttft)

    def on_finish(self, seq: Any) -> None:
        self.success[seq.finish_reason] = self.success.get(seq.finish_reason, 0) + 1
        self.e2e.observe(seq.last_mono - seq.received_mono)
        if seq.admitted_mono and seq.first_mono:
            self.queue.observe(seq.admitted_mono - seq.received_mono)
            self.prefill.observe(seq.first_mono - seq.admitted_mono)
            self.decode.observe(seq.last_mono - seq.first_mono)

    def on_abort(self) -> None:
        self.success["abort"] += 1

    def render(self, running: int, waiting: int, kv_usage: float, cache_config: dict[str, str] | None = None) -> str:
        lb = self.labels
        lines = []
        # as vLLM publishes its cache config: an info gauge of 1 with the settings as labels
        if cache_config:
            info = ",".join(f'{k}="{v}"' for k, v in cache_config.items())
            lines.extend(
                [
                    "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
                    "# TYPE vllm:cache_config_info gauge",
                    f"vllm:cache_config_info{{{info}}} 1.0",
                ]
            )

        def gauge(name: str, value: float, help_text: str) -> None:
            lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name}{{{lb}}} {value}"])

        def counter(name: str, value: float, help_text: str) -> None:
            lines.extend(
                [f"# HELP {name}_total {help_text}", f"# TYPE {name}_total counter", f"{name}_total{{{lb}}} {value}"]
            )

        gauge("vllm:num_requests_running", running, "Number of requests in model execution batches.")
        gauge("vllm:num_requests_waiting", waiting, "Number of requests waiting to be processed.")
        gauge("vllm:kv_cache_usage_perc", kv_usage, "KV-cache usage. 1 means 100 percent usage.")
        counter("vllm:prefix_cache_queries", self.cache_queries, "Prefix cache queries, in terms of tokens.")
        counter("vllm:prefix_cache_hits", self.cache_hits, "Prefix cache hits, in terms of tokens.")
        counter("vllm:prompt_tokens_cached", self.cache_hits, "Number of cached prompt tokens.")
        counter("vllm:num_preemptions", 0, "Cumulative number of preemptions.")
        counter("vllm:prompt_tokens", self.prompt_tokens, "Number of prefill tokens processed.")
        counter("vllm:generation_tokens", self.generation_tokens, "Number of generation tokens processed.")
        lines.append("# HELP vllm:request_success_total Count of successfully processed requests.")
        lines.append("# TYPE vllm:request_success_total counter")
        for reason, n in sorted(self.success.items()):
            lines.append(f'vllm:request_success_total{{{lb},finished_reason="{reason}"}} {n}')
        lines.extend(self.ttft.render("vllm:time_to_first_token_seconds", lb))
        lines.extend(self.itl.render("vllm:inter_token_latency_seconds", lb))
        lines.extend(self.e2e.render("vllm:e2e_request_latency_seconds", lb))
        lines.extend(self.queue.render("vllm:request_queue_time_seconds", lb))
        lines.extend(self.prefill.render("vllm:request_prefill_time_seconds", lb))
        lines.extend(self.decode.render("vllm:request_decode_time_seconds", lb))
        return "\n".join(lines) + "\n"
