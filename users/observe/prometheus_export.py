"""The suite's live figures in the Prometheus text format, at ``GET /metrics``.

Fed with each finished request (this process's records, or at a master the rows its
workers ship), so a master's figures cover every worker. Histograms are kept as bucket
counts here (a request's few hundred inter-token gaps are binned in one numpy call, not
observed one by one) and handed to ``prometheus_client`` as metric families when scraped;
gauges are read when scraped. Every name starts with ``llm_loadtest_``; the ``model_name``
label is vLLM's own, so one dashboard variable filters both. No Locust import.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from gevent.pywsgi import WSGIServer
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from llmclient.schema import Row

PREFIX = "llm_loadtest_"
OUTCOMES = ("success", "failure", "cancelled")

# vLLM's own bucket bounds (vllm/v1/metrics/loggers.py), so client and server histograms line up
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
TOKEN_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
E2E_BUCKETS = (
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
)


@dataclass(frozen=True, slots=True)
class Family:
    """One exported series: its name without the prefix, its type and its help text (the README lists them)."""

    name: str
    # counter, histogram or gauge
    kind: str
    help: str
    buckets: tuple[float, ...] = ()


REQUESTS = Family("requests", "counter", "Finished requests, by outcome (success, failure, cancelled).")
TTFT = Family("ttft_seconds", "histogram", "Time to first token, from just before the send.", TTFT_BUCKETS)
TPOT = Family(
    "tpot_seconds", "histogram", "Time per output token after the first, per successful request.", TOKEN_BUCKETS
)
ITL = Family("itl_seconds", "histogram", "Inter-token latency: every gap between content chunks.", TOKEN_BUCKETS)
E2E = Family("e2e_seconds", "histogram", "End-to-end latency, from the send to the last byte.", E2E_BUCKETS)
QUEUE = Family("queue_seconds", "histogram", "Open loop: time a request waited for --max-concurrency.", TTFT_BUCKETS)
PROMPT_TOKENS = Family("prompt_tokens", "counter", "Prompt tokens, from the server's usage.")
CACHED_TOKENS = Family("cached_tokens", "counter", "Prompt tokens the server's prefix cache served (usage).")
OUTPUT_TOKENS = Family("output_tokens", "counter", "Output tokens, from the server's usage.")
IN_FLIGHT = Family("requests_in_flight", "gauge", "Requests sent and not finished.")
QUEUED = Family("requests_queued", "gauge", "Open loop: requests waiting for a --max-concurrency slot.")
USERS = Family("users", "gauge", "Locust users running.")
STAGE = Family("stage", "gauge", "The --stages number running now (0 outside staged runs).")
LEVEL = Family("level", "gauge", "The sweep's or capacity search's level running now (0 outside them).")
FAMILIES: tuple[Family, ...] = (
    REQUESTS,
    TTFT,
    TPOT,
    ITL,
    E2E,
    QUEUE,
    PROMPT_TOKENS,
    CACHED_TOKENS,
    OUTPUT_TOKENS,
    IN_FLIGHT,
    QUEUED,
    USERS,
    STAGE,
    LEVEL,
)


def metric_name(family: Family) -> str:
    """The name as exported (a counter gets ``_total`` from prometheus_client)."""
    return PREFIX + family.name + ("_total" if family.kind == "counter" else "")


@dataclass(slots=True)
class Buckets:
    """A histogram's cumulative-to-be bucket counts and sum; values binned in one call."""

    bounds: tuple[float, ...]
    counts: np.ndarray = field(init=False)
    total: float = 0.0

    def __post_init__(self) -> None:
        # the last one: above every bound (+Inf)
        self.counts = np.zeros(len(self.bounds) + 1, dtype=np.int64)

    def observe_one(self, value: float) -> None:
        # le: a value on a bound counts in its bucket
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def observe(self, values: Sequence[float]) -> None:
        # a numpy call costs more than a few bisections
        if len(values) < 8:
            for value in values:
                self.observe_one(value)
            return
        array = np.asarray(values, dtype=np.float64)
        # a value equal to a bound belongs to that bucket (le: less than or equal)
        self.counts += np.bincount(np.searchsorted(self.bounds, array, side="left"), minlength=len(self.counts))
        self.total += float(array.sum())

    def family(
        self, name: str, help_text: str, labels: dict[str, str], into: HistogramMetricFamily | None = None
    ) -> HistogramMetricFamily:
        family = into or HistogramMetricFamily(name, help_text, labels=list(labels))
        cumulative = np.cumsum(self.counts)
        buckets = [(_le(b), float(c)) for b, c in zip(self.bounds, cumulative[:-1], strict=True)]
        buckets.append(("+Inf", float(cumulative[-1])))
        family.add_metric(list(labels.values()), buckets, self.total)
        return family


def _le(bound: float) -> str:
    return repr(float(bound)) if math.isfinite(bound) else "+Inf"


@dataclass(slots=True)
class ModelFigures:
    """Everything counted for one model name."""

    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    histograms: dict[Family, Buckets] = field(
        default_factory=lambda: {f: Buckets(f.buckets) for f in (TTFT, TPOT, ITL, E2E, QUEUE)}
    )
    tokens: dict[Family, int] = field(
        default_factory=lambda: dict.fromkeys((PROMPT_TOKENS, CACHED_TOKENS, OUTPUT_TOKENS), 0)
    )


Reading = Callable[[], float]


class Exporter(Collector):
    """The suite's figures for one process (or a master's whole run) as a Prometheus collector.

    ``model`` gives the model name of the requests being recorded; ``gauges`` read the
    in-flight, queued, user and stage figures when scraped.
    """

    def __init__(self, model: Callable[[], str], gauges: dict[Family, Reading] | None = None) -> None:
        self.model = model
        self.gauges = dict(gauges or {})
        self.figures: dict[str, ModelFigures] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # -- feeding -------------------------------------------------------------------------------
    def observe(self, row: Row) -> None:
        """One finished request. A cancelled one is counted, not timed (the test cut it off)."""
        f = row
        # each request under the model it asked for (--model a:0.7,b:0.3)
        name = f.model or self.model()
        figures = self.figures.get(name)
        if figures is None:
            figures = self.figures[name] = ModelFigures()
        outcome = "cancelled" if f.cancelled else ("success" if f.success else "failure")
        figures.requests[outcome] += 1
        if f.cancelled:
            return
        hist = figures.histograms
        if f.ttft_s is not None:
            hist[TTFT].observe_one(f.ttft_s)
        if f.tpot_s is not None and f.success:
            hist[TPOT].observe_one(f.tpot_s)
        hist[ITL].observe(f.itl_s)
        if f.e2e_s is not None:
            hist[E2E].observe_one(f.e2e_s)
        if f.queue_s is not None:
            hist[QUEUE].observe_one(f.queue_s)
        for family, count in (
            (PROMPT_TOKENS, f.prompt_tokens),
            (CACHED_TOKENS, f.cached_tokens),
            (OUTPUT_TOKENS, f.output_tokens),
        ):
            figures.tokens[family] += count or 0

    # -- scraping ------------------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            metric_name(REQUESTS)[: -len("_total")], REQUESTS.help, labels=["model_name", "outcome"]
        )
        for model, figures in self.figures.items():
            for outcome, n in figures.requests.items():
                requests.add_metric([model, outcome], n)
        yield requests
        for family in (TTFT, TPOT, ITL, E2E, QUEUE):
            merged = HistogramMetricFamily(metric_name(family), family.help, labels=["model_name"])
            for model, figures in self.figures.items():
                figures.histograms[family].family(metric_name(family), family.help, {"model_name": model}, merged)
            yield merged
        for family in (PROMPT_TOKENS, CACHED_TOKENS, OUTPUT_TOKENS):
            tokens = CounterMetricFamily(PREFIX + family.name, family.help, labels=["model_name"])
            for model, figures in self.figures.items():
                tokens.add_metric([model], figures.tokens[family])
            yield tokens
        for family, read in self.gauges.items():
            yield GaugeMetricFamily(metric_name(family), family.help, value=read())

    def wsgi_app(self) -> Callable:
        return make_wsgi_app(self.registry)


def serve(exporter: Exporter, host: str, port: int) -> tuple[WSGIServer, int]:
    """Serve ``GET /metrics`` on ``host:port`` (port 0: any free one); the server and its port."""
    server = WSGIServer((host, port), exporter.wsgi_app(), log=None)
    server.start()
    return server, int(server.server_port)
