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
  the share of requests meeting the SLO is at least ``--slo-attainment`` (steered by each level's
  share), a level whose interval straddles the target extended, and left unresolved if it still
  does. The answer (``capacity``) is estimated from all rate levels together; see ``capacity``.
- ``--repeat K``: each level of an explicit sweep runs K times, interleaved (A B A B …, so drift in the
  server does not land on one level); a run without a sweep is one level (its -u in flight, or its
  --request-rate) repeated. Each level says its repetition.
- A level marked saturated (see ``SaturationTest``) ends the climb: no higher level runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from scheduler.errors import ParameterError
from scheduler.slo import met

KINDS = ("rate", "concurrency", "prefix-groups", "prefix-tokens", "think-time")
# levels counted in whole numbers
WHOLE_KINDS = ("concurrency", "prefix-groups", "prefix-tokens")
# levels with prompts of their own, built before the run
PROMPT_KINDS = ("prefix-groups", "prefix-tokens")
# levels at one load (a rate or a concurrency) that differ in something else
AT_ONE_LOAD = (*PROMPT_KINDS, "think-time")
# PREFIX_levels.csv, one line per level as the run ran it (users/load/sweep.py writes it, reports read it)
# windows: its sending windows, "start-end" in unix seconds, ";" between an extension's
LEVEL_LOG_COLUMNS = (
    "level",
    "kind",
    "value",
    "purpose",
    "start",
    "send_end",
    "end",
    "saturated",
    "resolved",
    "extensions",
    "cache",
    "repeat",
    "windows",
)
# the two-sided 95% normal quantile: Wilson intervals are 95% intervals
Z_95 = 1.959964


@dataclass(frozen=True, slots=True)
class Level:
    # 1-based, in the order run
    number: int
    # "rate" (requests/s, an open loop), "concurrency" (requests in flight, a closed loop) or
    kind: str
    # "prefix-groups" (distinct shared prefixes, an open loop at ``rate``) or "prefix-tokens" (shared
    # tokens of each prompt, at ``rate`` or ``concurrency``)
    value: float
    # sweep, synchronous, throughput, probe
    purpose: str = "sweep"
    # a prompt level's request rate
    rate: float | None = None
    # a prompt level's requests in flight (no rate: a closed loop)
    concurrency: int | None = None
    # --repeat: which repetition of its value (1-based); None without --repeat
    repeat: int | None = None

    @property
    def open_loop(self) -> bool:
        """Arrivals at a rate (a rate level, a prompt level with a rate), not a closed loop."""
        return self.kind == "rate" or (self.kind in AT_ONE_LOAD and self.rate is not None)

    @property
    def in_flight(self) -> int:
        """A closed-loop level's requests in flight."""
        return int(self.value) if self.kind == "concurrency" else int(self.concurrency or 0)

    @property
    def prompt_set(self) -> str | None:
        """The name of a prompt level's own prompts (None: the run's)."""
        return prompt_set(self.kind, self.value)

    @property
    def think_time(self) -> float | None:
        """A think-time level's gap between a session's turns (seconds); None for other kinds."""
        return self.value if self.kind == "think-time" else None

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
        if self.kind == "think-time":
            load = f"{self.arrival_rate:g} sessions/s" if self.open_loop else f"{self.in_flight} sessions in flight"
            return f"level {self.number}: think time {self.value:g} s at {load}{again}"
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
    # finished requests (cancelled ones are not counted)
    requests: int
    # of them, those that met every SLO (all successful ones without an SLO)
    met: int
    # requests that ended per second within its sending windows (its throughput)
    achieved_rate: float
    saturated: bool = False
    # False: the attainment interval still straddles the target
    resolved: bool = True
    # the sizes of its bursts of requests that missed the SLO (``missed_runs``)
    runs: tuple[int, ...] = ()

    @property
    def attainment(self) -> float:
        return self.met / self.requests if self.requests else math.nan

    def interval(self, design: float = 1.0) -> tuple[float, float]:
        """The attainment's 95% interval, the requests counted as ``requests / design`` independent ones."""
        return wilson(self.met / design, self.requests / design)


def wilson(successes: float, n: float, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (``(nan, nan)`` for no trials); ``n`` may be an effective,
    fractional count."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


# misses separated by at most this many met requests belong to one burst
BURST_GAP = 3


def missed_runs(met: Sequence[bool], gap: int = BURST_GAP) -> tuple[int, ...]:
    """The sizes of the bursts of misses in send order: runs of requests that missed the SLO, a run going
    on across at most ``gap`` met requests (which count in its size: a burst's span)."""
    out: list[int] = []
    size = between = 0
    for ok in met:
        if not ok:
            size, between = (size + between + 1 if size else 1), 0
        elif size:
            between += 1
            if between > gap:
                out.append(size)
                size = between = 0
    return (*out, size) if size else tuple(out)


def design_effect(results: Sequence[LevelResult]) -> float:
    """How many requests count as one independent one: ``E[S²] / E[S]`` over the bursts of misses
    (``missed_runs``) of the given levels (at least 1).

    A server's misses come in bursts (a queue builds, every request behind it misses, it drains), so
    a level's misses are a sum of bursts: for K bursts of sizes S, Var(misses) ≈ E[K] E[S²], against
    E[K] E[S] were requests independent. Pooled over the levels, since one level's window may see
    none. Left out: the throughput level and saturated levels, whose queue never drains (one burst
    as long as the level: they fail anyway).
    """
    sizes = np.array(
        [size for r in results if not r.saturated and r.level.purpose != "throughput" for size in r.runs], dtype=float
    )
    return max(1.0, float((sizes**2).mean() / sizes.mean())) if sizes.size else 1.0


def fewest_to_pass(target: float, design: float = 1.0, z: float = Z_95) -> int:
    """The fewest requests, all meeting the SLO, whose interval lies at or above ``target`` (all n met: the
    lower bound is n / (n + z²), n counted as ``n / design`` independent requests)."""
    if target <= 0:
        return 0
    return math.ceil(design * z * z * target / (1 - target)) if target < 1 else 2**31


def verdict(result: LevelResult, target: float, design: float = 1.0) -> str:
    """``pass`` (the interval lies at or above the target), ``fail`` (below it, or saturated), or ``close``."""
    if result.saturated or result.requests == 0:
        return "fail"
    low, high = result.interval(design)
    if low >= target:
        return "pass"
    if high < target:
        return "fail"
    return "close"


class SweepSpec(NamedTuple):
    """A sweep's kind of level and its values (none for ``auto``)."""

    kind: str
    values: tuple[float, ...]

    def __str__(self) -> str:
        return self.kind if self.kind == "auto" else f"{self.kind}:{','.join(f'{v:g}' for v in self.values)}"


def parse_sweep(text: str) -> SweepSpec:
    """``rate:1,2,4`` / ``concurrency:1,8,32`` / ``prefix-groups:1,8,64`` / ``prefix-tokens:0,1536`` / ``auto``
    -> (kind, values); ValueError with one line."""
    text = text.strip()
    if text == "auto":
        return SweepSpec("auto", ())
    kind, sep, values = text.partition(":")
    kind = kind.strip()
    if not sep or kind not in KINDS:
        raise ParameterError(
            "sweep",
            " takes rate:R1,R2,…, concurrency:C1,C2,…, prefix-groups:G1,G2,…, prefix-tokens:P1,P2,…, "
            "think-time:S1,S2,… or auto; "
            f"got {text!r}",
        )
    out = []
    for part in values.split(","):
        try:
            value = float(part)
        except ValueError:
            raise ParameterError("sweep", f" {kind}: {part.strip()!r} is not a number") from None
        if not (value > 0 or (value == 0 and kind in ("prefix-tokens", "think-time"))) or math.isinf(value):
            raise ParameterError("sweep", f" {kind} levels must be positive, got {part.strip()}")
        if kind in WHOLE_KINDS and value != int(value):
            raise ParameterError("sweep", f" {kind} levels are whole numbers, got {part.strip()}")
        out.append(value)
    return SweepSpec(kind, tuple(out))


class Plan:
    """What runs next, given the results so far (``None``: the run is over)."""

    def next_level(self, results: Sequence[LevelResult]) -> Level | None:
        raise NotImplementedError

    def extend(self, result: LevelResult, results: Sequence[LevelResult] = ()) -> bool:
        """Whether to give the level just run (after ``results``) more requests (the capacity search's close
        calls)."""
        return False


def _climbing_stopped(results: Sequence[LevelResult]) -> bool:
    return any(r.saturated and r.level.purpose in ("sweep", "probe") for r in results)


@dataclass
class ExplicitSweep(Plan):
    kind: str
    values: tuple[float, ...]
    # prompt levels' request rate
    rate: float | None = None
    # prompt levels' requests in flight, without a rate
    concurrency: int | None = None
    # --repeat: the values run this many times, interleaved
    repeat: int = 1

    def next_level(self, results: Sequence[LevelResult]) -> Level | None:
        n = len(results)
        if n >= len(self.values) * self.repeat or _climbing_stopped(results):
            return None
        repetition, index = divmod(n, len(self.values))
        return Level(
            n + 1,
            self.kind,
            self.values[index],
            rate=self.rate,
            concurrency=self.concurrency,
            repeat=repetition + 1 if self.repeat > 1 else None,
        )


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
        # the server got no faster with more in flight: nothing lies between
        if not (high > low > 0):
            return None
        step = (high - low) / (self.rates + 1)
        return Level(n + 1, "rate", round(low + step * (n - 1), 6))


@dataclass
class CapacitySearch(Plan):
    """The highest rate meeting the SLO at the target attainment: a throughput level, then bisection, steered
    by each level's attainment (its share of requests that met the SLO)."""

    target: float
    saturating_concurrency: int
    # stop when the bracket is this narrow, relative to its top
    tolerance: float = 0.05
    max_levels: int = 10
    max_extensions: int = 2
    extensions: dict[int, int] = field(default_factory=dict)

    def bracket(self, results: Sequence[LevelResult]) -> tuple[float, float]:
        """(highest rate whose attainment reached the target, lowest rate above it that did not, else the
        ceiling) among the probes so far."""
        low, high = attainment_bracket(results, self.target)
        return low, self.ceiling(results) if high is None else high

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
        # a server's SLO capacity usually lies near its throughput: look there first
        if n == 1:
            return Level(2, "rate", round(0.9 * results[0].achieved_rate, 6), "probe")
        if high - low <= self.tolerance * high:
            return None
        return Level(n + 1, "rate", round((low + high) / 2, 6), "probe")

    def extend(self, result: LevelResult, results: Sequence[LevelResult] = ()) -> bool:
        """A probe whose interval (``design_effect`` of all levels so far) straddles the target runs again."""
        design = design_effect([*results, result])
        if result.level.kind != "rate" or verdict(result, self.target, design) != "close":
            return False
        done = self.extensions.get(result.level.number, 0)
        if done >= self.max_extensions:
            result.resolved = False
            return False
        self.extensions[result.level.number] = done + 1
        return True


def attainment_bracket(results: Sequence[LevelResult], target: float) -> tuple[float, float | None]:
    """(highest rate whose attainment reached ``target``, 0 if none; lowest rate above it that did not, None
    if none did): the search's bracket."""
    probes = [r for r in results if r.level.kind == "rate" and r.requests]
    passed = [r.level.value for r in probes if not r.saturated and r.attainment >= target]
    low = max(passed, default=0.0)
    above = [r.level.value for r in probes if (r.saturated or r.attainment < target) and r.level.value > low]
    return low, min(above, default=None)


@dataclass(frozen=True)
class Capacity:
    """The answer of a capacity search.

    ``rate``: where the attainment, fitted non-increasing in the rate over every rate level (pool
    adjacent violators, each level weighted by its requests), crosses the target (linear between the
    two levels around it); with no level below the target, the highest rate tried (``at_least``).
    ``interval``: a 95% confidence interval for the true crossing. Its low end is the highest rate r
    such that the levels from r up to some higher one, pooled, have their interval (``design_effect``)
    at or above the target: attainment falls with rate, so the true attainment at r is at least their
    pooled mean. Its high end, likewise, the lowest rate whose pooled levels down to some lower one
    lie below the target; None where no rate did (the capacity is at least the low end).
    ``bracket``: the search's (highest rate that reached the target, lowest above it that did not).
    """

    rate: float
    interval: tuple[float, float | None]
    bracket: tuple[float, float | None]
    # the number of the highest level that reached the target
    level: int | None
    # no rate level fell below the target: the capacity is at least ``rate``
    at_least: bool
    # the design effect the intervals used
    design: float
    # the rate levels it was estimated from
    levels: int = 0


def capacity(results: Sequence[LevelResult], target: float) -> Capacity:
    """The answer of a capacity search (or of any sweep over rates) from its levels (see ``Capacity``)."""
    probes = sorted((r for r in results if r.level.kind == "rate" and r.requests), key=lambda r: r.level.value)
    design = design_effect(probes)
    low, high = attainment_bracket(probes, target)
    best = max((r for r in probes if r.level.value == low), key=lambda r: r.level.number, default=None)
    if not probes:
        return Capacity(0.0, (0.0, None), (0.0, None), None, True, design)
    rates = [r.level.value for r in probes]
    fitted = non_increasing([0.0 if r.saturated else r.attainment for r in probes], [r.requests for r in probes])
    rate, at_least = crossing(rates, fitted, target)
    interval = confidence_bounds(probes, target)
    # levels that contradict a falling attainment (a saturated level below a passing one) can put the fit's
    # crossing outside the interval: the interval's bound is the better-founded answer there
    rate = min(max(rate, interval[0]), interval[1] if interval[1] is not None else math.inf)
    return Capacity(
        rate, interval, (low, high), best.level.number if best is not None else None, at_least, design, len(probes)
    )


def capacity_sentence(answer: Capacity, slo: str, target: float) -> str:
    """The capacity search's answer in words: the estimate and its interval, or what bounds it, and why."""
    head = f"Capacity within {slo} for {100 * target:g}% of requests:"
    low, high = answer.interval
    if answer.rate <= 0 and not answer.at_least:
        return f"{head} below {_rate(answer.bracket[1] or 0.0)} req/s: no rate tried met it."
    if answer.at_least:
        return f"{head} at least {_rate(answer.rate)} req/s (no rate tried, up to it, fell below the target)."
    bound = f"{_rate(low)}–{_rate(high)}" if high is not None else f"from {_rate(low)}"
    text = f"{head} {_rate(answer.rate)} req/s (95% CI {bound} req/s"
    text += f"; the search's bracket {_rate(answer.bracket[0])}–{_rate(answer.bracket[1] or answer.rate)} req/s)."
    if low <= 0:
        need = fewest_to_pass(target, answer.design)
        text += (
            f" No rate was confirmed: misses came in bursts (design effect {answer.design:.3g}), and a level "
            f"needs about {need:,} requests, all meeting the SLO, to confirm one: use longer levels."
        )
    return text


def _rate(value: float) -> str:
    """A request rate to three significant digits (no more than a search knows)."""
    return f"{value:.3g}"


def non_increasing(values: Sequence[float], weights: Sequence[float]) -> list[float]:
    """The weighted least-squares non-increasing fit (pool adjacent violators)."""
    # [mean, weight, count]
    blocks: list[list[float]] = []
    for value, weight in zip(values, weights, strict=True):
        blocks.append([value, float(weight), 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            mean2, weight2, count2 = blocks.pop()
            mean1, weight1, count1 = blocks.pop()
            total = weight1 + weight2
            blocks.append([(mean1 * weight1 + mean2 * weight2) / total, total, count1 + count2])
    return [mean for mean, _, count in blocks for _ in range(int(count))]


def crossing(rates: Sequence[float], fitted: Sequence[float], target: float) -> tuple[float, bool]:
    """Where a non-increasing curve through (rate, fitted) falls below ``target`` (linear between points);
    (the last rate, True) when it never does, (0, False) when the first point is below already."""
    for i, (rate, value) in enumerate(zip(rates, fitted, strict=True)):
        if value < target:
            if i == 0:
                return 0.0, False
            r0, v0 = rates[i - 1], fitted[i - 1]
            return (r0 + (v0 - target) * (rate - r0) / (v0 - value) if v0 > value else rate), False
    return rates[-1], True


def confidence_bounds(probes: Sequence[LevelResult], target: float) -> tuple[float, float | None]:
    """``Capacity.interval`` from the rate levels in rising order of rate."""
    n = len(probes)
    # bursts grow with the rate: a block's design effect is that of its levels and every one above
    designs = [design_effect(probes[i:]) for i in range(n)]

    def pooled(i: int, j: int) -> tuple[float, float]:
        part = probes[i : j + 1]
        return wilson(sum(r.met for r in part) / designs[i], sum(r.requests for r in part) / designs[i])

    reached = [i for i in range(n) if any(pooled(i, j)[0] >= target for j in range(i, n))]
    low = probes[max(reached)].level.value if reached else 0.0
    fell = [
        i
        for i in range(n)
        if probes[i].level.value > low and (probes[i].saturated or any(pooled(j, i)[1] < target for j in range(i + 1)))
    ]
    return low, probes[min(fell)].level.value if fell else None


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


def level_result(
    level: Level,
    start: Sequence[float],
    success: Sequence[bool],
    cancelled: Sequence[bool],
    ttft: Sequence[float],
    tpot: Sequence[float],
    e2e: Sequence[float],
    windows: Sequence[tuple[float, float]],
    slo: Mapping[str, float],
    saturated: bool = False,
    resolved: bool = True,
) -> LevelResult:
    """A level's result from its rows (the run's driver and the reports alike).

    Cancelled requests (cut off by the end of the level) are left out. Attainment counts the
    requests that met every SLO (``scheduler.slo.met``), or succeeded when there is no SLO. The
    achieved rate is the requests that ended within the level's sending windows (its extensions
    add windows) per second of them (``ended_rate``): the rate the server got through, open loop or
    closed alike.
    """
    kept = ~np.asarray(cancelled, dtype=bool)
    ok = np.asarray(success, dtype=bool)
    good = met(slo, ok, np.asarray(ttft, dtype=float), np.asarray(tpot, dtype=float), np.asarray(e2e, dtype=float))
    starts = np.asarray(start, dtype=float)
    ends = (starts + np.nan_to_num(np.asarray(e2e, dtype=float), nan=0.0))[kept]
    requests = int(kept.sum())
    order = np.argsort(starts[kept], kind="stable")
    return LevelResult(
        level,
        requests,
        int((good & kept).sum()),
        ended_rate(ends, windows),
        saturated,
        resolved,
        missed_runs(good[kept][order].tolist()),
    )


def ended_rate(ends: np.ndarray, windows: Sequence[tuple[float, float]]) -> float:
    """Requests that ended per second within the windows, each window timed from its first request's end
    (a level starts empty: before its first answer nothing can end, whatever the server's rate)."""
    count, span = 0, 0.0
    for begin, end in windows:
        inside = np.sort(ends[(ends >= begin) & (ends <= end)])
        if inside.size >= 2:
            count += inside.size - 1
            span += end - float(inside[0])
    return count / span if span > 0 else math.nan


def format_windows(windows: Sequence[tuple[float, float]]) -> str:
    """A level's sending windows as ``PREFIX_levels.csv`` holds them."""
    return ";".join(f"{begin!r}-{end!r}" for begin, end in windows)


def parse_windows(text: str) -> list[tuple[float, float]]:
    """``format_windows``'s text back (an empty list for none)."""
    out = []
    for part in str(text).split(";"):
        begin, sep, end = part.strip().partition("-")
        if sep:
            out.append((float(begin), float(end)))
    return out
