"""Sweeps and the capacity search: the levels of one run, each decided from the results before it.

No Locust, no I/O: ``users/load/sweep.py`` runs the levels; ``reports`` reads them back.

- A **level** is a stretch of the run at one request rate (an open loop) or one concurrency
  (a closed loop of that many requests in flight), for ``--level-duration`` seconds or
  ``--level-requests`` requests.
- ``--sweep rate:1,2,4`` / ``concurrency:1,8,32``: the levels in order.
- ``--sweep prefix-groups:1,8,64`` (with ``--request-rate R``): open-loop levels at one rate, each
  with that many distinct shared prefixes of its own: the prefix cache's working set grows level by
  level, and the hit rate collapses where it outgrows the cache (the KV working-set cliff).
- ``--sweep prefix-tokens:0,1536`` (at a fixed ``--input-tokens``, with ``--request-rate R`` or
  ``--max-concurrency C``): levels that differ only in how many tokens of each prompt are shared
  (0: every prompt distinct), each with prefixes of its own: the prefix cache's speed-up.
- ``--sweep auto`` (guidellm's sweep): a synchronous level (concurrency 1) and a throughput level
  (saturating concurrency) first, then rates spread evenly between the two rates they achieved.
- ``--find-capacity``: the throughput level, then a bisection over rates for the highest at which
  the share of requests meeting the SLO is at least ``--slo-attainment``, judged by its Wilson
  interval: a level whose interval straddles the target is extended, and left unresolved if it
  still does.
- ``--repeat K``: each level of an explicit sweep runs K times, interleaved (A B A B …, so drift in the
  server does not land on one level); a run without a sweep is one level (its -u in flight, or its
  --request-rate) repeated. Each level says its repetition.
- A level marked saturated (see ``SaturationTest``) ends the climb: no higher level runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from scheduler.slo import met

KINDS = ("rate", "concurrency", "prefix-groups", "prefix-tokens")
WHOLE_KINDS = ("concurrency", "prefix-groups", "prefix-tokens")  # levels counted in whole numbers
PROMPT_KINDS = ("prefix-groups", "prefix-tokens")  # levels with prompts of their own, built before the run
# PREFIX_levels.csv, one line per level as the run ran it (users/load/sweep.py writes it, reports read it)
LEVEL_LOG_COLUMNS = ("level", "kind", "value", "purpose", "start", "send_end", "end", "saturated", "resolved",
                     "extensions", "cache", "repeat")  # fmt: skip
Z_95 = 1.959964  # the two-sided 95% normal quantile: Wilson intervals are 95% intervals


@dataclass(frozen=True, slots=True)
class Level:
    number: int  # 1-based, in the order run
    kind: str  # "rate" (requests/s, an open loop), "concurrency" (requests in flight, a closed loop) or
    # "prefix-groups" (distinct shared prefixes, an open loop at ``rate``) or "prefix-tokens" (shared
    # tokens of each prompt, at ``rate`` or ``concurrency``)
    value: float
    purpose: str = "sweep"  # sweep, synchronous, throughput, probe
    rate: float | None = None  # a prompt level's request rate
    concurrency: int | None = None  # a prompt level's requests in flight (no rate: a closed loop)
    repeat: int | None = None  # --repeat: which repetition of its value (1-based); None without --repeat

    @property
    def open_loop(self) -> bool:
        """Arrivals at a rate (a rate level, a prompt level with a rate), not a closed loop."""
        return self.kind == "rate" or (self.kind in PROMPT_KINDS and self.rate is not None)

    @property
    def in_flight(self) -> int:
        """A closed-loop level's requests in flight."""
        return int(self.value) if self.kind == "concurrency" else int(self.concurrency or 0)

    @property
    def prompt_set(self) -> str | None:
        """The name of a prompt level's own prompts (None: the run's)."""
        return prompt_set(self.kind, self.value)

    @property
    def arrival_rate(self) -> float:
        return self.value if self.kind == "rate" else float(self.rate or 0.0)

    @property
    def label(self) -> str:
        load = f"{self.arrival_rate:g} req/s" if self.open_loop else f"{self.in_flight} in flight"
        again = f" (repeat {self.repeat})" if self.repeat else ""
        if self.kind == "prefix-groups":
            return f"level {self.number}: {self.value:g} shared prefixes at {load}{again}"
        if self.kind == "prefix-tokens":
            return f"level {self.number}: {self.value:g} shared prompt tokens at {load}{again}"
        unit = "req/s" if self.kind == "rate" else "in flight"
        return f"level {self.number}: {self.kind} {self.value:g} {unit}{again}"


@dataclass(frozen=True, slots=True)
class PromptLevel:
    """A prompt level's prompts: its name (``prompt_set``), shared prefix length and number of prefixes."""

    name: str
    prefix_tokens: int
    groups: int


def prompt_set(kind: str, value: float) -> str | None:
    """A prompt level's prompts are named by its kind and value (``prefix-tokens:1536``)."""
    return f"{kind}:{value:g}" if kind in PROMPT_KINDS else None


@dataclass(slots=True)
class LevelResult:
    level: Level
    requests: int  # finished requests (cancelled ones are not counted)
    met: int  # of them, those that met every SLO (all successful ones without an SLO)
    achieved_rate: float  # finished requests per second over the level
    saturated: bool = False
    resolved: bool = True  # False: the attainment interval still straddles the target

    @property
    def attainment(self) -> float:
        return self.met / self.requests if self.requests else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.met, self.requests)


def wilson(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (``(nan, nan)`` for no trials)."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def fewest_to_pass(target: float, z: float = Z_95) -> int:
    """The fewest requests, all meeting the SLO, whose Wilson interval lies at or above ``target``
    (all n met: the lower bound is n / (n + z²))."""
    return 0 if target <= 0 else (math.ceil(z * z * target / (1 - target)) if target < 1 else 2**31)


def verdict(result: LevelResult, target: float) -> str:
    """``pass`` (the interval lies at or above the target), ``fail`` (below it, or saturated), or ``close``."""
    if result.saturated or result.requests == 0:
        return "fail"
    low, high = result.interval
    if low >= target:
        return "pass"
    if high < target:
        return "fail"
    return "close"


def parse_sweep(text: str) -> tuple[str, tuple[float, ...]]:
    """``rate:1,2,4`` / ``concurrency:1,8,32`` / ``prefix-groups:1,8,64`` / ``prefix-tokens:0,1536`` / ``auto``
    -> (kind, values); ValueError with one line."""
    text = text.strip()
    if text == "auto":
        return "auto", ()
    kind, sep, values = text.partition(":")
    kind = kind.strip()
    if not sep or kind not in KINDS:
        raise ValueError(
            "--sweep takes rate:R1,R2,…, concurrency:C1,C2,…, prefix-groups:G1,G2,…, prefix-tokens:P1,P2,… or auto; "
            f"got {text!r}"
        )
    out = []
    for part in values.split(","):
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"--sweep {kind}: {part.strip()!r} is not a number") from None
        if not (value > 0 or (value == 0 and kind == "prefix-tokens")) or math.isinf(value):
            raise ValueError(f"--sweep {kind} levels must be positive, got {part.strip()}")
        if kind in WHOLE_KINDS and value != int(value):
            raise ValueError(f"--sweep {kind} levels are whole numbers, got {part.strip()}")
        out.append(value)
    return kind, tuple(out)


class Plan:
    """What runs next, given the results so far (``None``: the run is over)."""

    def next_level(self, results: Sequence[LevelResult]) -> Level | None:
        raise NotImplementedError

    def extend(self, result: LevelResult) -> bool:
        """Whether to give the level just run more requests (the capacity search's close calls)."""
        return False


def _climbing_stopped(results: Sequence[LevelResult]) -> bool:
    return any(r.saturated and r.level.purpose in ("sweep", "probe") for r in results)


@dataclass
class ExplicitSweep(Plan):
    kind: str
    values: tuple[float, ...]
    rate: float | None = None  # prompt levels' request rate
    concurrency: int | None = None  # prompt levels' requests in flight, without a rate
    repeat: int = 1  # --repeat: the values run this many times, interleaved

    def next_level(self, results: Sequence[LevelResult]) -> Level | None:
        n = len(results)
        if n >= len(self.values) * self.repeat or _climbing_stopped(results):
            return None
        repetition, index = divmod(n, len(self.values))
        return Level(n + 1, self.kind, self.values[index], rate=self.rate, concurrency=self.concurrency,
                     repeat=repetition + 1 if self.repeat > 1 else None)  # fmt: skip


@dataclass
class AutoSweep(Plan):
    """A synchronous and a throughput level, then ``rates`` levels evenly between their rates."""

    saturating_concurrency: int
    rates: int = 8

    def next_level(self, results: Sequence[LevelResult]) -> Level | None:
        n = len(results)
        if n == 0:
            return Level(1, "concurrency", 1, "synchronous")
        if n == 1:
            return Level(2, "concurrency", self.saturating_concurrency, "throughput")
        if n - 2 >= self.rates or _climbing_stopped(results):
            return None
        low, high = results[0].achieved_rate, results[1].achieved_rate
        if not (high > low > 0):  # the server got no faster with more in flight: nothing lies between
            return None
        step = (high - low) / (self.rates + 1)
        return Level(n + 1, "rate", round(low + step * (n - 1), 6))


@dataclass
class CapacitySearch(Plan):
    """The highest rate meeting the SLO at the target attainment: a throughput level, then bisection."""

    target: float
    saturating_concurrency: int
    tolerance: float = 0.05  # stop when the bracket is this narrow, relative to its top
    max_levels: int = 10
    max_extensions: int = 2
    extensions: dict[int, int] = field(default_factory=dict)

    def bracket(self, results: Sequence[LevelResult]) -> tuple[float, float]:
        """(highest passing rate, lowest failing or unresolved rate) among the probes so far."""
        probes = [r for r in results if r.level.kind == "rate"]
        passed = [r.level.value for r in probes if verdict(r, self.target) == "pass"]
        failed = [r.level.value for r in probes if verdict(r, self.target) != "pass"]
        ceiling = self.ceiling(results)
        return max(passed, default=0.0), min(failed, default=ceiling)

    def ceiling(self, results: Sequence[LevelResult]) -> float:
        throughput = next((r for r in results if r.level.purpose == "throughput"), None)
        return 1.1 * throughput.achieved_rate if throughput is not None else math.nan

    def next_level(self, results: Sequence[LevelResult]) -> Level | None:
        n = len(results)
        if n == 0:
            return Level(1, "concurrency", self.saturating_concurrency, "throughput")
        if n >= self.max_levels or not self.ceiling(results) > 0:
            return None
        low, high = self.bracket(results)
        if n == 1:  # a server's SLO capacity usually lies near its throughput: look there first
            return Level(2, "rate", round(0.9 * results[0].achieved_rate, 6), "probe")
        if high - low <= self.tolerance * high:
            return None
        return Level(n + 1, "rate", round((low + high) / 2, 6), "probe")

    def extend(self, result: LevelResult) -> bool:
        if result.level.kind != "rate" or verdict(result, self.target) != "close":
            return False
        done = self.extensions.get(result.level.number, 0)
        if done >= self.max_extensions:
            result.resolved = False
            return False
        self.extensions[result.level.number] = done + 1
        return True


@dataclass(frozen=True)
class Capacity:
    rate: float  # the highest rate that passed (0: none did)
    interval: tuple[float, float]  # (that rate, the lowest rate that did not pass)
    level: int | None  # the passing level's number


def capacity(results: Sequence[LevelResult], target: float) -> Capacity:
    """The answer of a capacity search (or of any sweep over rates) from its levels."""
    probes = [r for r in results if r.level.kind == "rate"]
    passed = [r for r in probes if verdict(r, target) == "pass"]
    best = max(passed, key=lambda r: r.level.value, default=None)
    low = best.level.value if best is not None else 0.0
    above = [r.level.value for r in probes if verdict(r, target) != "pass" and r.level.value > low]
    throughput = max((r.achieved_rate for r in results), default=math.nan)
    high = min(above, default=max(throughput, low))
    return Capacity(low, (low, high), best.level.number if best is not None else None)


@dataclass
class SaturationTest:
    """Past saturation, requests in flight and TTFT both keep growing: a Mann–Kendall trend test.

    Fed one sample a second (requests in flight, the median TTFT of the requests that finished in
    that second). Over the last ``window`` samples, the level is saturated when both series have
    an increasing trend at one-sided level ``alpha`` and in-flight grew by at least half (and by
    ``min_growth`` requests): a server that keeps up holds its queue steady, one past saturation
    grows it without end.
    """

    window: int = 10
    alpha: float = 0.01
    min_growth: int = 5
    in_flight: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)

    def add(self, in_flight: float, ttft_median: float | None) -> None:
        self.in_flight.append(in_flight)
        if ttft_median is not None and math.isfinite(ttft_median):
            self.ttft.append(ttft_median)

    def saturated(self) -> bool:
        if len(self.in_flight) < self.window or len(self.ttft) < self.window:
            return False
        flight, ttft = self.in_flight[-self.window :], self.ttft[-self.window :]
        grew = flight[-1] >= max(1.5 * flight[0], flight[0] + self.min_growth)
        return grew and increasing(flight, self.alpha) and increasing(ttft, self.alpha)


def increasing(values: Sequence[float], alpha: float) -> bool:
    """Mann–Kendall: does the series trend upward, at one-sided level ``alpha``? (tie-corrected)"""
    n = len(values)
    s = sum((values[j] > values[i]) - (values[j] < values[i]) for i in range(n) for j in range(i + 1, n))
    ties: dict[float, int] = {}
    for v in values:
        ties[v] = ties.get(v, 0) + 1
    variance = (n * (n - 1) * (2 * n + 5) - sum(t * (t - 1) * (2 * t + 5) for t in ties.values())) / 18
    if s <= 0 or variance <= 0:
        return False
    z = (s - 1) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2)) < alpha


def level_result(level: Level, start: Sequence[float], success: Sequence[bool], cancelled: Sequence[bool],
                 ttft: Sequence[float], tpot: Sequence[float], e2e: Sequence[float],
                 windows: Sequence[tuple[float, float]], slo: dict[str, float], saturated: bool = False,
                 resolved: bool = True) -> LevelResult:  # fmt: skip
    """A level's result from its rows (the run's driver and the reports alike).

    Cancelled requests (cut off by the end of the level) are left out. Attainment counts the
    requests that met every SLO (``scheduler.slo.met``), or succeeded when there is no SLO. The
    achieved rate is requests sent per second over the level's sending windows (its extensions
    add windows).
    """
    kept = ~np.asarray(cancelled, dtype=bool)
    ok = np.asarray(success, dtype=bool)
    good = met(slo, ok, np.asarray(ttft, dtype=float), np.asarray(tpot, dtype=float), np.asarray(e2e, dtype=float))
    starts = np.asarray(start, dtype=float)
    inside = np.zeros(len(starts), dtype=bool)
    span = 0.0
    for begin, end in windows:
        inside |= (starts >= begin) & (starts <= end)
        span += max(end - begin, 0.0)
    requests = int(kept.sum())
    sent = int((kept & inside).sum())
    return LevelResult(level, requests, int((good & kept).sum()), sent / span if span > 0 else math.nan,
                       saturated, resolved)  # fmt: skip
