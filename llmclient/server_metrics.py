"""Scrape the server's Prometheus ``/metrics`` into a time series.

Parsed with prometheus_client's text parser. Values of one metric are summed
over its label sets (engines, models), except histograms, which are skipped
here. Plain Python apart from the caller's scheduling.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Mapping
from typing import Any, TextIO

from prometheus_client.parser import text_string_to_metric_families

from llmclient.errors import TransportError
from llmclient.http import Connection, Target

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
COLUMNS = ["time", *SERIES]
HITS, QUERIES = "prefix_cache_hits_total", "prefix_cache_queries_total"


def prefix_cache_hit_rate(first: Mapping[str, float], last: Mapping[str, float]) -> float | None:
    """The prefix-cache hit rate between two scrapes: Δhits / Δqueries (None without queries)."""
    if QUERIES not in first or QUERIES not in last:
        return None
    queries = last[QUERIES] - first[QUERIES]
    hits = last.get(HITS, 0.0) - first.get(HITS, 0.0)
    return hits / queries if queries > 0 else None


def parse_metrics(text: str) -> dict[str, float]:
    """The SERIES values found in a Prometheus text exposition (missing ones are absent)."""
    wanted = {v: k for k, v in SERIES.items()}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            column = wanted.get(sample.name)
            if column is not None:
                totals[column] = totals.get(column, 0.0) + float(sample.value)
    return totals


class ServerMetrics:
    """Scrapes ``/metrics``; keeps the latest values and writes rows to a CSV when given a path."""

    def __init__(self, target: Target, headers: dict[str, str], path: str | None) -> None:
        self.target = target
        self.headers = headers
        self.path = path
        self.latest: dict[str, float] = {}
        self.first: dict[str, float] = {}
        self.available = True
        self._conn = Connection(target, read_timeout=10.0, connect_timeout=5.0)
        self._file: TextIO | None = None
        self._writer: Any = None  # csv.writer, once the file is open

    def scrape(self) -> dict[str, float] | None:
        if not self.available:
            return None
        try:
            head, body = self._conn.request("GET", "/metrics", headers=self.headers)
        except TransportError as exc:
            logger.warning("could not scrape %s/metrics: %s", self.target.host_header, exc)
            return None
        if head.status != 200:
            logger.warning("the server has no usable /metrics (HTTP %s); server metrics are not recorded", head.status)
            self.available = False
            return None
        try:
            values = parse_metrics(body.decode("utf-8", "replace"))
        except ValueError as exc:
            logger.warning("could not parse /metrics: %s", exc)
            return None
        values["time"] = time.time()
        if not self.first:
            self.first = dict(values)
        self.latest = values
        self._write(values)
        return values

    def hit_rate(self) -> float | None:
        """The hit rate since the first scrape."""
        return prefix_cache_hit_rate(self.first, self.latest)

    def _write(self, values: dict[str, float]) -> None:
        if self.path is None:
            return
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

    def close(self) -> None:
        self._conn.close()
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None
