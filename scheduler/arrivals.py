"""Arrival schedules: when each request of an open-loop run is due, as ``vllm bench serve`` draws them.

Gaps between arrivals are gamma-distributed with shape ``burstiness`` and mean ``1 / rate``
(burstiness 1: a Poisson process; below 1 burstier, above 1 smoother; ``inf``: evenly
spaced). One seeded generator draws the whole run's schedule, so the arrival process is the
same whatever the number of processes that send it (a gamma process split among workers is
not a gamma process at the per-worker rate: the master draws, the workers send).

At a constant rate the gaps are drawn ``BLOCK`` at a time (fewer for the last ones of a ``-n``)
and each block is scaled so that its mean is exactly ``1 / rate``: the schedule runs at the
requested rate, not at a finite sample's (200 Poisson arrivals at 20 req/s span 18-22 req/s at
one standard deviation). For i.i.d. gamma gaps, dividing by their sum leaves the shape alone
(the normalised vector is Dirichlet and independent of the sum), so this is the gamma process
conditioned on each block's span: gaps keep their law (the KS test and the coefficients of
variation hold) and ``n`` arrivals span ``(n - 1) / rate``.

Rates over a run, as profiles:
- ``ConstantRate``: ``--request-rate R``;
- ``Ramp``: ``--ramp-up linear|exponential`` from ``--ramp-up-start`` to ``--ramp-up-end``
  over the run's ``-n`` requests, vLLM's definition: request i of N is drawn at
  ``start + (end - start) * i / (N - 1)`` (linear) or ``start * (end / start) ** (i / (N - 1))``;
- ``Stages``: ``--stages 30s:5,60s:20`` (each stage's rate for its duration, in order).

``--stages 30s:8u,60s:32u`` (user counts) is a closed loop in steps instead: Locust's
``LoadTestShape`` runs it (``users/shape.py``); ``stage_at`` numbers its requests alike.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from scheduler.errors import ParameterError

INF = math.inf
# an arrival this close to a stage's end (summed gaps round) belongs to the next stage
BOUNDARY_S = 1e-9
# a constant rate's gaps are scaled to their mean this many at a time
BLOCK = 1024


@dataclass(frozen=True, slots=True)
class Arrival:
    # 0-based, in the order of the schedule
    index: int
    # seconds after the schedule's start
    offset_s: float
    # "" outside staged runs
    stage: str


class RateProfile(Protocol):
    def rate(self, index: int, offset_s: float) -> tuple[float, str] | None:
        """The rate (req/s) for the request after ``offset_s`` with this index, and its stage;
        None when the profile has ended."""
        ...


@dataclass(frozen=True)
class ConstantRate:
    requests_per_s: float

    def rate(self, index: int, offset_s: float) -> tuple[float, str] | None:
        return self.requests_per_s, ""


@dataclass(frozen=True)
class Ramp:
    # "linear" or "exponential"
    strategy: str
    start: float
    end: float
    # the run's -n
    total: int

    def rate(self, index: int, offset_s: float) -> tuple[float, str] | None:
        progress = index / max(self.total - 1, 1)
        if self.strategy == "linear":
            return self.start + (self.end - self.start) * progress, ""
        return self.start * (self.end / self.start) ** progress, ""


@dataclass(frozen=True)
class Stage:
    duration_s: float
    # requests per second (an open loop)
    rate: float | None = None
    # or a user count (a closed loop, run by a LoadTestShape)
    users: int | None = None


def stage_at(stages: tuple[Stage, ...], offset_s: float) -> tuple[int, Stage] | None:
    """The stage (1-based number, stage) running ``offset_s`` after the start; None after the last."""
    end = 0.0
    for number, stage in enumerate(stages, 1):
        end += stage.duration_s
        if offset_s < end - BOUNDARY_S:
            return number, stage
    return None


@dataclass(frozen=True)
class Stages:
    stages: tuple[Stage, ...]

    def rate(self, index: int, offset_s: float) -> tuple[float, str] | None:
        current = stage_at(self.stages, offset_s)
        if current is None or current[1].rate is None:
            return None
        return current[1].rate, str(current[0])


def gap(rng: random.Random, rate: float, burstiness: float) -> float:
    """One inter-arrival gap: gamma with shape ``burstiness`` and mean ``1 / rate``."""
    if math.isinf(burstiness):
        return 1.0 / rate
    return rng.gammavariate(burstiness, 1.0 / (rate * burstiness))


def exact_rate_gaps(rng: random.Random, rate: float, burstiness: float, total: int | None) -> Iterator[float]:
    """A constant rate's gaps, each block of them scaled to the mean ``1 / rate`` (see the module's note);
    ``total - 1`` of them for ``total`` arrivals, else without end."""
    left = None if total is None else max(total - 1, 0)
    while left is None or left > 0:
        n = BLOCK if left is None else min(BLOCK, left)
        block = [gap(rng, rate, burstiness) for _ in range(n)]
        scale = n / rate / math.fsum(block)
        yield from (g * scale for g in block)
        if left is not None:
            left -= n


def schedule(profile: RateProfile, burstiness: float, seed: int, total: int | None = None) -> Iterator[Arrival]:
    """The run's arrivals, lazily: the first is due at once, each next one a gap later.

    Ends after ``total`` arrivals (``-n``) or when the profile ends (the last stage); else never.
    """
    rng = random.Random(f"arrivals-{seed}")
    exact = (
        exact_rate_gaps(rng, profile.requests_per_s, burstiness, total) if isinstance(profile, ConstantRate) else None
    )
    offset = 0.0
    index = 0
    while total is None or index < total:
        current = profile.rate(index, offset)
        if current is None:
            return
        rate, stage = current
        if index:
            offset += next(exact) if exact is not None else gap(rng, rate, burstiness)
            # the gap may cross into the next stage
            current = profile.rate(index, offset)
            if current is None:
                return
            stage = current[1]
        yield Arrival(index, offset, stage)
        index += 1


def parse_burstiness(text: str) -> float:
    """``burstiness``: a positive number, or ``inf`` (evenly spaced arrivals)."""
    value = float(text)
    if not value > 0:
        raise ParameterError("burstiness", f" must be positive (or inf), got {text}")
    return value


def parse_stages(text: str) -> tuple[Stage, ...]:
    """``stages``, e.g. ``30s:5,2m:20,45:10``: each DURATION:RATE (durations in s, or with s/m/h), or
    ``30s:8u,1m:32u``: each DURATION:USERS (a closed loop in steps); one kind per run."""
    stages = []
    for part in text.split(","):
        duration, sep, amount = part.strip().partition(":")
        amount = amount.strip()
        try:
            if not sep:
                raise ValueError
            seconds = _duration_s(duration.strip())
            value = float(amount[:-1] if amount.endswith("u") else amount)
        except ValueError:
            raise ParameterError(
                "stages",
                f" takes DURATION:RATE,... or DURATION:USERSu,... (e.g. 30s:5,60s:20 or 30s:8u,60s:32u), got {part!r}",
            ) from None
        if seconds <= 0 or not value > 0 or math.isinf(value):
            raise ParameterError("stages", f": each duration and rate must be positive, got {part!r}")
        if amount.endswith("u"):
            if value != int(value):
                raise ParameterError("stages", f": a user count is a whole number, got {part!r}")
            stages.append(Stage(seconds, users=int(value)))
        else:
            stages.append(Stage(seconds, rate=value))
    if len({stage.users is None for stage in stages}) > 1:
        raise ParameterError("stages", " mixes rates and user counts: give one kind")
    return tuple(stages)


def format_stages(stages: tuple[Stage, ...]) -> str:
    """Stages as ``parse_stages`` reads them (durations in seconds)."""
    return ",".join(
        f"{s.duration_s:g}s:{s.users}u" if s.users is not None else f"{s.duration_s:g}s:{s.rate:g}" for s in stages
    )


def _duration_s(text: str) -> float:
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)
