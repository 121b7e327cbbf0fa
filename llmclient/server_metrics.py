"""Scrape the server's Prometheus ``/metrics`` into a time series, and its latency histograms.

Parsed with prometheus_client's text parser. Values of one metric are summed over its label
sets (engines, models). The gauges and counters of ``SERIES`` go to ``PREFIX_server_metrics.csv``;
the histograms of ``HISTOGRAMS`` (vLLM's own TTFT, queue, prefill, decode, ITL and E2E, under
their names of several vLLM versions) to ``PREFIX_server_histograms.jsonl``, one line per scrape:
the difference of two scrapes is what the server measured in between (``server_figures``).
Plain Python apart from the caller's scheduling.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from prometheus_client.parser import text_string_to_metric_families

from llmclient.errors import TransportError
from llmclient.http import Connection, Target, request

logger = logging.getLogger(__name__)

# CSV column -> vLLM sample name
SERIES = {
    "num_requests_running": "vllm:num_requests_running",
    "num_requests_waiting": "vllm:num_requests_waiting",
    "kv_cache_usage_perc": "vllm:kv_cache_usage_perc",
    "prefix_cache_queries_total": "vllm:prefix_cache_queries_total",
    "prefix_cache_hits_total": "vllm:prefix_cache_hits_total",
    "prompt_tokens_total": "vllm:prompt_tokens_total",
    "generation_tokens_total": "vllm:generation_tokens_total",
    "num_preemptions_total": "vllm:num_preemptions_total",
}
# the client's own figures at each scrape (users/observe/cpu_watch.py)
CLIENT_COLUMNS = ["client_cpu_share"]
COLUMNS = ["time", *SERIES, *CLIENT_COLUMNS]
HITS, QUERIES = "prefix_cache_hits_total", "prefix_cache_queries_total"


def prefix_cache_hit_rate(first: Mapping[str, float], last: Mapping[str, float]) -> float | None:
    """The prefix-cache hit rate between two scrapes: Δhits / Δqueries (None without queries)."""
    if QUERIES not in first or QUERIES not in last:
        return None
    queries = last[QUERIES] - first[QUERIES]
    hits = last.get(HITS, 0.0) - first.get(HITS, 0.0)
    return hits / queries if queries > 0 else None


# the server's latency histograms: our name -> vLLM's names, newest first (renamed across versions)
HISTOGRAMS: dict[str, tuple[str, ...]] = {
    "ttft": ("vllm:time_to_first_token_seconds",),
    "queue": ("vllm:request_queue_time_seconds",),
    "prefill": ("vllm:request_prefill_time_seconds",),
    "decode": ("vllm:request_decode_time_seconds",),
    "itl": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
    "e2el": ("vllm:e2e_request_latency_seconds",),
}
QUANTILES = (50, 90, 99)


@dataclass(frozen=True)
class Histogram:
    """A Prometheus histogram summed over its label sets: cumulative counts by upper bound (ascending,
    the last +Inf)."""

    sum: float
    count: float
    buckets: tuple[tuple[float, float], ...]

    def since(self, earlier: Histogram) -> Histogram:
        """What was observed between ``earlier`` and this (a restarted server: this one whole)."""
        if self.count < earlier.count:
            return self
        before = dict(earlier.buckets)
        return Histogram(
            self.sum - earlier.sum,
            self.count - earlier.count,
            tuple((le, c - before.get(le, 0.0)) for le, c in self.buckets),
        )

    def mean(self) -> float:
        return self.sum / self.count if self.count > 0 else math.nan

    def quantile(self, q: float) -> float:
        """Prometheus's ``histogram_quantile``: linear within the bucket that holds rank q x count; in the
        +Inf bucket, the highest finite bound."""
        if self.count <= 0 or not self.buckets:
            return math.nan
        rank = q * self.count
        low, below = 0.0, 0.0
        for le, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(le):
                    return low
                inside = cumulative - below
                return low + (le - low) * ((rank - below) / inside if inside > 0 else 1.0)
            low, below = le, cumulative
        return low

    def bucket_of(self, q: float) -> tuple[float, float]:
        """The [low, high] bounds of the bucket ``quantile(q)`` interpolates in: all the histogram knows of
        that quantile (high is inf in the +Inf bucket; NaN, NaN without observations)."""
        if self.count <= 0 or not self.buckets:
            return math.nan, math.nan
        rank = q * self.count
        low = 0.0
        for le, cumulative in self.buckets:
            if cumulative >= rank:
                return low, le
            low = le
        return low, math.inf

    def as_json(self) -> dict[str, Any]:
        return {
            "sum": self.sum,
            "count": self.count,
            "buckets": [["+Inf" if math.isinf(le) else le, c] for le, c in self.buckets],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Histogram:
        return cls(float(data["sum"]), float(data["count"]), tuple((float(le), float(c)) for le, c in data["buckets"]))


def parse_scrape(text: str) -> tuple[dict[str, float], dict[str, Histogram]]:
    """The SERIES values and the HISTOGRAMS found in a Prometheus text exposition (missing ones absent)."""
    wanted = {v: k for k, v in SERIES.items()}
    names = {name: key for key, candidates in HISTOGRAMS.items() for name in candidates}
    totals: dict[str, float] = {}
    # vLLM name -> sum, count, buckets by bound
    raw: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        if family.type == "histogram" and family.name in names:
            found = raw.setdefault(family.name, {"sum": 0.0, "count": 0.0, "buckets": {}})
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    le = float(sample.labels.get("le", "inf"))
                    found["buckets"][le] = found["buckets"].get(le, 0.0) + float(sample.value)
                elif sample.name.endswith("_sum"):
                    found["sum"] += float(sample.value)
                elif sample.name.endswith("_count"):
                    found["count"] += float(sample.value)
            continue
        for sample in family.samples:
            column = wanted.get(sample.name)
            if column is not None:
                totals[column] = totals.get(column, 0.0) + float(sample.value)
    histograms = {}
    for key, candidates in HISTOGRAMS.items():
        name = next((n for n in candidates if n in raw), None)
        if name is not None:
            found = raw[name]
            histograms[key] = Histogram(found["sum"], found["count"], tuple(sorted(found["buckets"].items())))
    return totals, histograms


def server_figures(first: Mapping[str, Histogram], last: Mapping[str, Histogram]) -> dict[str, Any]:
    """What the server measured between two scrapes: ``server_mean_ttft_ms``, ``server_p50_ttft_ms`` …
    for each of HISTOGRAMS it has, each percentile with ``…_bounds`` (the [low, high] ms of the histogram
    bucket it was interpolated in), and ``server_metrics_missing`` (those it lacks)."""
    out: dict[str, Any] = {}
    missing = []
    for key in HISTOGRAMS:
        if key not in last:
            missing.append(key)
            continue
        window = last[key].since(first[key]) if key in first else last[key]
        out[f"server_mean_{key}_ms"] = window.mean() * 1e3
        for q in QUANTILES:
            out[f"server_p{q}_{key}_ms"] = window.quantile(q / 100) * 1e3
            low, high = window.bucket_of(q / 100)
            # the bucket it was interpolated in (None: unbounded above): a figure no sharper than that
            out[f"server_p{q}_{key}_ms_bounds"] = [low * 1e3, high * 1e3 if math.isfinite(high) else None]
        if key == "ttft":
            out["server_requests"] = window.count
    out["server_metrics_missing"] = missing
    return out


class ScrapeFiles:
    """``PREFIX_server_metrics.csv`` (one row per scrape) and ``PREFIX_server_histograms.jsonl``."""

    def __init__(self, path: str | None, histogram_path: str | None) -> None:
        self.path = path
        self.histogram_path = histogram_path
        self._file: TextIO | None = None
        # csv.writer, once the file is open
        self._writer: Any = None
        if histogram_path and os.path.exists(histogram_path):
            # a file of an earlier run under the same prefix
            os.remove(histogram_path)

    def write(self, values: Mapping[str, float], histograms: Mapping[str, Histogram]) -> None:
        if self.path is not None:
            if self._writer is None:
                folder = os.path.dirname(self.path)
                if folder:
                    os.makedirs(folder, exist_ok=True)
                file = self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
                self._writer = csv.writer(file, lineterminator="\n")
                self._writer.writerow(COLUMNS)
            self._writer.writerow([repr(values[c]) if c in values else "" for c in COLUMNS])
            if self._file is not None:
                self._file.flush()
        if self.histogram_path is not None and histograms:
            line = json.dumps({"time": values["time"], **{k: h.as_json() for k, h in histograms.items()}})
            with open(self.histogram_path, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None


class Scrapes:
    """The first and the latest scrape of one server (or of the sum of several): what the live figures use."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.latest: dict[str, float] = {}
        self.first_histograms: dict[str, Histogram] = {}
        self.latest_histograms: dict[str, Histogram] = {}

    def keep(self, values: dict[str, float], histograms: dict[str, Histogram]) -> None:
        if not self.first:
            self.first, self.first_histograms = dict(values), histograms
        self.latest, self.latest_histograms = values, histograms

    def hit_rate(self) -> float | None:
        """The hit rate since the first scrape."""
        return prefix_cache_hit_rate(self.first, self.latest)

    def figures(self) -> dict[str, Any]:
        """The server's latency figures since the first scrape (``server_figures``)."""
        return server_figures(self.first_histograms, self.latest_histograms) if self.latest_histograms else {}


def metrics_target(url: str, tls: ssl.SSLContext | None = None) -> Target:
    """A replica's ``/metrics`` (``http://host:port`` or ``…/metrics``): the target its path is read under."""
    url = url.strip().rstrip("/")
    return Target.parse(url[: -len("/metrics")] if url.endswith("/metrics") else url, tls)


class ServerMetrics(Scrapes):
    """Scrapes one server's ``/metrics``; keeps the first and latest, and writes them when given files."""

    def __init__(self, target: Target, headers: dict[str, str], files: ScrapeFiles | None = None) -> None:
        super().__init__()
        self.target = target
        self.headers = headers
        self.files = files
        self.available = True
        # the last scrape could not reach it
        self.failing = False
        self._conn = Connection(target, read_timeout=10.0, connect_timeout=5.0)
        # the periodic scraper and a level's boundary scrape can ask at once: one exchange on the
        # connection at a time (threading's lock is gevent's once Locust has patched)
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"{self.target.scheme}://{self.target.host_header}{self.target.base_path}"

    def read(self) -> tuple[dict[str, float], dict[str, Histogram]] | None:
        """One scrape, parsed (None when it failed: said once in a warning)."""
        if not self.available:
            return None
        try:
            head, body = request(self._conn, "GET", "/metrics", headers=self.headers)
        except TransportError as exc:
            # said once, not at every scrape while it lasts
            if not self.failing:
                logger.warning("could not scrape %s/metrics: %s", self.name, exc)
            self.failing = True
            return None
        if self.failing:
            logger.info("%s/metrics answers again", self.name)
            self.failing = False
        if head.status != 200:
            logger.warning("%s has no usable /metrics (HTTP %s); its metrics are not recorded", self.name, head.status)
            self.available = False
            return None
        try:
            values, histograms = parse_scrape(body.decode("utf-8", "replace"))
        except ValueError as exc:
            logger.warning("could not parse %s/metrics: %s", self.name, exc)
            return None
        values["time"] = time.time()
        return values, histograms

    def scrape(self) -> dict[str, float] | None:
        with self._lock:
            got = self.read()
            if got is None:
                return None
            values, histograms = got
            self.keep(values, histograms)
            if self.files is not None:
                self.files.write(values, histograms)
            return values

    def close(self) -> None:
        self._conn.close()
        if self.files is not None:
            self.files.close()


# averaged over replicas; the other series add up
MEAN_SERIES = ("kv_cache_usage_perc",)


def combine(
    scrapes: list[tuple[dict[str, float], dict[str, Histogram]]],
) -> tuple[dict[str, float], dict[str, Histogram]]:
    """Several replicas' scrapes as one server's: counters, gauges and histograms summed (KV usage averaged)."""
    values: dict[str, float] = {}
    for column in SERIES:
        found = [v[column] for v, _ in scrapes if column in v]
        if found:
            total = sum(found)
            values[column] = total / len(found) if column in MEAN_SERIES else total
    values["time"] = max(v["time"] for v, _ in scrapes)
    histograms: dict[str, Histogram] = {}
    for key in HISTOGRAMS:
        found_h = [h[key] for _, h in scrapes if key in h]
        if found_h:
            buckets: dict[float, float] = {}
            for h in found_h:
                for le, c in h.buckets:
                    buckets[le] = buckets.get(le, 0.0) + c
            histograms[key] = Histogram(
                sum(h.sum for h in found_h), sum(h.count for h in found_h), tuple(sorted(buckets.items()))
            )
    return values, histograms


class ReplicaMetrics(Scrapes):
    """Every replica's ``/metrics`` (``--metrics-url``, else each ``-H`` host), scraped together: each into
    its own files (``PREFIX_server_metrics_N.csv``, ``…_histograms_N.jsonl``, N from 1, named in
    ``PREFIX_replicas.json``) and their sum into the run's. One replica: the run's files alone."""

    def __init__(
        self,
        urls: list[str],
        headers: dict[str, str],
        prefix: str | None,
        extra: Callable[[], Mapping[str, float | None]] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__()
        self.extra = extra
        # scrapes in the files' order, one at a time (ServerMetrics._lock)
        self._lock = threading.Lock()
        several = len(urls) > 1
        self.replicas = [
            ServerMetrics(
                metrics_target(url, tls),
                headers,
                ScrapeFiles(f"{prefix}_server_metrics_{i}.csv", f"{prefix}_server_histograms_{i}.jsonl")
                if prefix and several
                else None,
            )
            for i, url in enumerate(urls, 1)
        ]
        self.files = (
            ScrapeFiles(f"{prefix}_server_metrics.csv", f"{prefix}_server_histograms.jsonl") if prefix else None
        )
        if prefix and several:
            with open(f"{prefix}_replicas.json", "w", encoding="utf-8") as f:
                json.dump([{"replica": i, "url": r.name} for i, r in enumerate(self.replicas, 1)], f, indent=2)

    @property
    def available(self) -> bool:
        return any(r.available for r in self.replicas)

    def scrape(self) -> dict[str, float] | None:
        with self._lock:
            got = [r.scrape() for r in self.replicas]
            scrapes = [(v, r.latest_histograms) for v, r in zip(got, self.replicas, strict=True) if v is not None]
            if not scrapes:
                return None
            values, histograms = combine(scrapes)
            if self.extra is not None:
                values.update({k: v for k, v in self.extra().items() if v is not None})
            self.keep(values, histograms)
            if self.files is not None:
                self.files.write(values, histograms)
            return values

    def close(self) -> None:
        for replica in self.replicas:
            replica.close()
        if self.files is not None:
            self.files.close()


def client_minus_server(client: float | None, server: float | None) -> float | None:
    """The client's figure less the server's for the same requests (what the network and the client add);
    None when either is missing or NaN."""
    if client is None or server is None or math.isnan(client) or math.isnan(server):
        return None
    return client - server
