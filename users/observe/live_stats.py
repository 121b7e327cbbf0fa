"""Live LLM figures for the web UI and ``GET /llm/stats``: a rolling window and a history.

Fed with finished requests (locally from the request events, at the master from
the rows the workers ship), in-flight counts and the latest server scrape. No
Locust import; the caller takes snapshots on a timer.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

# np.percentile imports it at its first call (13 ms): here, before the run
import numpy.ma

from llmclient.schema import Row
from llmclient.server_metrics import client_minus_server
from scheduler.proof import ScheduleProof, prove

SPARK = "▁▂▃▄▅▆▇█"


class Window:
    """The finished requests of the last seconds, a column each (a figure a request lacks is NaN):
    a snapshot reads them as arrays, well under a millisecond at thousands of requests a second (it
    runs in the event loop that sends the open loop's arrivals)."""

    NAMES = ("t", "ttft", "tpot", "decode_tps", "output_tokens", "success")

    def __init__(self) -> None:
        self.columns: tuple[deque[float], ...] = tuple(deque() for _ in self.NAMES)

    def __len__(self) -> int:
        return len(self.columns[0])

    def add(self, *values: float) -> None:
        for column, value in zip(self.columns, values, strict=True):
            column.append(value)

    def drop_before(self, t: float) -> None:
        ends = self.columns[0]
        while ends and ends[0] < t:
            for column in self.columns:
                column.popleft()

    def arrays(self) -> list[np.ndarray]:
        return [np.fromiter(column, float, len(column)) for column in self.columns]

    def clear(self) -> None:
        for column in self.columns:
            column.clear()


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def sparkline(values: list[float | None], width: int = 30) -> str:
    """The last ``width`` values as Unicode blocks, scaled between their min and max."""
    vals = [v for v in values[-width:] if v is not None and np.isfinite(v)]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = hi - lo
    out = []
    for v in values[-width:]:
        if v is None or not np.isfinite(v):
            out.append(" ")
        else:
            out.append(SPARK[int((v - lo) / span * (len(SPARK) - 1)) if span > 0 else 0])
    return "".join(out)


def _pcts(values: np.ndarray, qs: list[float]) -> list[float | None]:
    return [float(v) for v in np.percentile(values, qs)] if values.size else [None] * len(qs)


def window_figures(window: Window, span: float) -> dict[str, float | None]:
    """A window's latency and throughput figures (the report's names), over ``span`` seconds."""
    _, ttft, tpot, tps, tokens, success = window.arrays()
    ok = success != 0
    ttft, tpot, tps = (col[ok & ~np.isnan(col)] for col in (ttft * 1000, tpot * 1000, tps))
    n_ok = int(np.count_nonzero(ok))
    ttft_median, ttft_p90, ttft_p99 = _pcts(ttft, [50, 90, 99])
    return {
        "median_ttft_ms": ttft_median,
        "p90_ttft_ms": ttft_p90,
        "p99_ttft_ms": ttft_p99,
        "median_tpot_ms": _pcts(tpot, [50])[0],
        "mean_decode_tps": float(tps.mean()) if tps.size else None,
        "output_tokens_per_s": float(tokens[ok].sum()) / span,
        "requests_per_s": n_ok / span,
        "errors_per_s": (len(window) - n_ok) / span,
    }


class ModelStats:
    """One model's (or LoRA adapter's) finished requests: its window, and its counts since the start."""

    def __init__(self) -> None:
        self.window = Window()
        self.completed = self.errors = self.prompt_tokens = self.cached_tokens = 0

    def figures(self, span: float) -> dict[str, float | None]:
        hit_rate = self.cached_tokens / self.prompt_tokens if self.prompt_tokens else None
        return {
            "completed": self.completed,
            "errors": self.errors,
            **window_figures(self.window, span),
            "usage_prefix_cache_hit_rate": hit_rate,
        }


class LiveStats:
    def __init__(self, window_s: float = 10.0, history_points: int = 600) -> None:
        self.window_s = window_s
        self._window = Window()
        self.history: deque[dict] = deque(maxlen=history_points)
        self.completed = 0
        self.errors = 0
        # requests whose prompt's unique part the server had cached already
        self.warm_cache = 0
        self.in_flight = 0
        self.server: dict[str, float | None] = {}
        # open loop: due times and lags of the requests so far
        self._scheduled: list[float] = []
        self._lags: list[float] = []
        # open loop: requests waiting for a slot now
        self.queued = 0
        # a sweep's finished levels (users/load/sweep.py)
        self.levels: list[dict] = []
        # and the one running now
        self.current_level: dict | None = None
        # the busiest client process's share of a core, last second
        self.client_cpu_share: float | None = None
        # the run's successful requests' TTFT, for the mean against the server's
        self.ttft_sum = 0.0
        self.ttft_count = 0
        self.started = time.time()
        self._models: dict[str, ModelStats] = {}
        # each model's figures at the last snapshot
        self.models: dict[str, dict[str, float | None]] = {}

    def begin_level(self, level: dict | None) -> None:
        """A sweep's level begins (its number, kind and value), or the levels are done (None)."""
        self.current_level = level

    def observe(self, row: Row) -> None:
        """A finished request: this process's, or one a worker shipped (at the master)."""
        f = row
        if f.scheduled_time is not None and f.schedule_lag_s is not None:
            self.add_schedule(f.scheduled_time, f.schedule_lag_s)
        if f.warm_cache:
            self.warm_cache += 1
        if f.cancelled:
            return
        values = (
            f.end_time,
            _or_nan(f.ttft_s),
            _or_nan(f.tpot_s),
            _or_nan(f.decode_tps),
            f.output_tokens or 0,
            f.success,
        )
        self._window.add(*values)
        if f.model:
            model = self._models.get(f.model) or self._models.setdefault(f.model, ModelStats())
            model.window.add(*values)
            if f.success:
                model.completed += 1
                if f.prompt_tokens is not None and f.cached_tokens is not None:
                    model.prompt_tokens += f.prompt_tokens
                    model.cached_tokens += f.cached_tokens
            else:
                model.errors += 1
        if f.success:
            self.completed += 1
            if f.ttft_s is not None:
                self.ttft_sum += f.ttft_s
                self.ttft_count += 1
        else:
            self.errors += 1

    def add_schedule(self, due: float, lag: float) -> None:
        """An open-loop request's due time and the scheduler's lag (for the proof at the end)."""
        self._scheduled.append(due)
        self._lags.append(lag)

    def schedule_proof(self) -> ScheduleProof | None:
        return prove(self._scheduled, self._lags)

    def reset(self) -> None:
        self._scheduled.clear()
        self._lags.clear()
        self._window.clear()
        self.history.clear()
        self.completed = self.errors = self.in_flight = self.warm_cache = self.ttft_count = 0
        self.ttft_sum = 0.0
        self.levels.clear()
        self.current_level = None
        self.started = time.time()
        self._models.clear()
        self.models = {}

    def update(
        self, in_flight: int, queued: int, client_cpu_share: float | None, server: dict[str, float | None] | None
    ) -> None:
        """The process's gauges now: requests in flight and queued, its CPU share, the server's latest scrape."""
        self.in_flight, self.queued, self.client_cpu_share = in_flight, queued, client_cpu_share
        if server:
            self.server = server

    def snapshot(self, now: float | None = None) -> dict:
        """Figures over the last ``window_s`` seconds, appended to the history."""
        now = now or time.time()
        span = min(self.window_s, max(now - self.started, 1e-9))
        for window in (self._window, *(model.window for model in self._models.values())):
            window.drop_before(now - self.window_s)
        self.models = {name: model.figures(span) for name, model in sorted(self._models.items())}
        point = {
            "time": now,
            **window_figures(self._window, span),
            "in_flight": self.in_flight,
            "queued": self.queued,
            "requested_rate": self._rate_in_window(self._scheduled, now),
            "achieved_rate": self._rate_in_window(
                np.add(self._scheduled[-4096:], self._lags[-4096:]) if self._scheduled else [], now
            ),
            "level": self.current_level["level"] if self.current_level else None,
            "level_value": self.current_level["value"] if self.current_level else None,
            "levels_done": len(self.levels) if self.levels or self.current_level else None,
            "completed": self.completed,
            "errors": self.errors,
            "prefix_cache_hit_rate": self.server.get("prefix_cache_hit_rate"),
            "num_requests_running": self.server.get("num_requests_running"),
            "num_requests_waiting": self.server.get("num_requests_waiting"),
            "kv_cache_usage_perc": self.server.get("kv_cache_usage_perc"),
            "client_cpu_share": self.client_cpu_share,
            "client_mean_ttft_ms": self.ttft_sum / self.ttft_count * 1e3 if self.ttft_count else None,
            "server_mean_ttft_ms": self.server.get("server_mean_ttft_ms"),
            "server_mean_queue_ms": self.server.get("server_mean_queue_ms"),
            "server_mean_prefill_ms": self.server.get("server_mean_prefill_ms"),
        }
        point["client_minus_server_ttft_ms"] = client_minus_server(
            point["client_mean_ttft_ms"], point["server_mean_ttft_ms"]
        )
        self.history.append(point)
        return point

    def _rate_in_window(self, times: list[float] | np.ndarray, now: float) -> float | None:
        """Requests per second whose time falls in the last window (None outside an open loop)."""
        if not self._scheduled:
            return None
        recent = np.asarray(times[-4096:])
        return int(np.count_nonzero((recent >= now - self.window_s) & (recent <= now))) / self.window_s

    def current(self) -> dict:
        return self.history[-1] if self.history else self.snapshot()

    def series(self, key: str) -> list[float | None]:
        return [p.get(key) for p in self.history]


@dataclass(frozen=True)
class Figure:
    """A live figure: its key in a snapshot (the report's name where the report has the figure), its label
    and format in the web UI's LLM tab, and the live chart it is drawn on (``web/charts.html``; "" none)."""

    key: str
    label: str
    fmt: str
    chart: str = ""


TTFT_CHART = "Time to first token (ms)"
FIGURES: tuple[Figure, ...] = (
    Figure("median_ttft_ms", "TTFT median (ms)", "{:.1f}", TTFT_CHART),
    Figure("p90_ttft_ms", "TTFT p90 (ms)", "{:.1f}", TTFT_CHART),
    Figure("p99_ttft_ms", "TTFT p99 (ms)", "{:.1f}", TTFT_CHART),
    Figure("median_tpot_ms", "TPOT median (ms)", "{:.2f}", "TPOT median (ms)"),
    Figure("mean_decode_tps", "Decode tokens/s per request", "{:.1f}", "Decode tokens/s per request"),
    Figure("output_tokens_per_s", "Output tokens/s (all)", "{:.0f}", "Output tokens/s (all)"),
    Figure("requests_per_s", "Requests/s", "{:.2f}"),
    Figure("in_flight", "Requests in flight", "{:.0f}", "Requests in flight"),
    Figure("requested_rate", "Open loop: requested req/s", "{:.2f}"),
    Figure("achieved_rate", "Open loop: achieved req/s", "{:.2f}"),
    Figure("queued", "Open loop: waiting for a slot", "{:.0f}"),
    Figure("level", "Sweep: level now", "{:.0f}"),
    Figure("level_value", "Sweep: its rate (req/s) or concurrency", "{:g}"),
    Figure("levels_done", "Sweep: levels done", "{:.0f}"),
    Figure("completed", "Completed requests", "{:.0f}"),
    Figure("errors", "Errors", "{:.0f}"),
    Figure("errors_per_s", "Errors/s", "{:.2f}", "Errors/s"),
    Figure("prefix_cache_hit_rate", "Prefix-cache hit rate (server)", "{:.1%}", "Prefix-cache hit rate (server)"),
    Figure("num_requests_running", "Server: running requests", "{:.0f}", "Server requests"),
    Figure("num_requests_waiting", "Server: waiting requests", "{:.0f}", "Server requests"),
    Figure("kv_cache_usage_perc", "Server: KV-cache usage", "{:.1%}", "KV-cache usage"),
    Figure("client_cpu_share", "Client CPU: busiest process, share of a core", "{:.0%}"),
    Figure("client_mean_ttft_ms", "TTFT mean since the start: client (ms)", "{:.2f}", "SERVER_TTFT"),
    Figure("server_mean_ttft_ms", "TTFT mean since the start: server (ms)", "{:.2f}", "SERVER_TTFT"),
    Figure("server_mean_queue_ms", "Server: of it, queue (ms)", "{:.2f}", "SERVER_TTFT"),
    Figure("server_mean_prefill_ms", "Server: of it, prefill (ms)", "{:.2f}", "SERVER_TTFT"),
    Figure("client_minus_server_ttft_ms", "TTFT: client - server (ms)", "{:.2f}"),
)
# the live snapshot's keys before they took the report's names; /llm/stats answers them too for one release
LEGACY_KEYS = {
    "ttft_p50_ms": "median_ttft_ms",
    "ttft_p90_ms": "p90_ttft_ms",
    "ttft_p99_ms": "p99_ttft_ms",
    "tpot_p50_ms": "median_tpot_ms",
    "decode_tps_mean": "mean_decode_tps",
}


def with_legacy_keys(point: dict) -> dict:
    """A snapshot or a level's figures, with their old key names beside the new ones."""
    return {**point, **{old: point[new] for old, new in LEGACY_KEYS.items() if new in point}}


def charts() -> list[tuple[str, list[str]]]:
    """The live charts, in order: (title, the keys drawn on it)."""
    groups: dict[str, list[str]] = {}
    for figure in FIGURES:
        if figure.chart:
            groups.setdefault(figure.chart, []).append(figure.key)
    titles = {"SERVER_TTFT": "TTFT mean since the start (ms): client, server, its queue and prefill"}
    return [(titles.get(chart, chart), keys) for chart, keys in groups.items()]


# the "LLM by model" tab's columns, each model's figures
MODEL_COLUMNS: tuple[Figure, ...] = (
    Figure("completed", "Completed", "{:.0f}"),
    Figure("errors", "Errors", "{:.0f}"),
    Figure("requests_per_s", "Requests/s", "{:.2f}"),
    Figure("median_ttft_ms", "TTFT median (ms)", "{:.1f}"),
    Figure("p99_ttft_ms", "TTFT p99 (ms)", "{:.1f}"),
    Figure("median_tpot_ms", "TPOT median (ms)", "{:.2f}"),
    Figure("output_tokens_per_s", "Output tokens/s", "{:.0f}"),
    Figure("usage_prefix_cache_hit_rate", "Prefix-cache hit rate (usage, since the start)", "{:.1%}"),
)


def model_rows(stats: LiveStats) -> list[dict[str, str]]:
    """A row per model: its figures over the last window (counts and hit rate since the start)."""
    return [
        {
            "model": name,
            **{c.key: c.fmt.format(v) if (v := figures.get(c.key)) is not None else "–" for c in MODEL_COLUMNS},
        }
        for name, figures in stats.models.items()
    ]


def table_rows(stats: LiveStats) -> list[dict[str, str]]:
    cur = stats.current()
    rows = []
    for figure in FIGURES:
        key, label, fmt = figure.key, figure.label, figure.fmt
        value = cur.get(key)
        rows.append(
            {
                "metric": label,
                "now": fmt.format(value) if value is not None else "–",
                "trend": sparkline(stats.series(key)),
            }
        )
    return rows
