"""A quantity that is fixed or drawn per use: a think time, a tool's time, a session's number of turns.

``parse_spread("10")`` is always 10; ``"exp:10"`` exponential with mean 10; ``"uniform:5,15"`` uniform
between 5 and 15. Whole quantities (turns) draw whole numbers (a uniform one from LO to HI inclusive).
No Locust, no I/O.
"""

from __future__ import annotations

import math
import random
from typing import NamedTuple

from scheduler.errors import ParameterError

SHAPES = ("fixed", "exp", "uniform")


class Spread(NamedTuple):
    """``fixed`` (``low``), ``exp`` (mean ``low``) or ``uniform`` (``low`` to ``high``)."""

    shape: str
    low: float
    high: float

    def draw(self, rng: random.Random) -> float:
        if self.shape == "exp":
            return rng.expovariate(1.0 / self.low) if self.low > 0 else 0.0
        if self.shape == "uniform":
            return rng.uniform(self.low, self.high)
        return self.low

    def draw_whole(self, rng: random.Random) -> int:
        """A whole number (at least 1): uniform LO..HI inclusive, an exponential's rounded up."""
        if self.shape == "uniform":
            return rng.randint(int(self.low), int(self.high))
        return max(1, math.ceil(self.draw(rng)))

    @property
    def most(self) -> float:
        """The largest value it can take (an exponential's is unbounded)."""
        return math.inf if self.shape == "exp" else self.high

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2 if self.shape == "uniform" else self.low

    def __str__(self) -> str:
        if self.shape == "fixed":
            return f"{self.low:g}"
        if self.shape == "exp":
            return f"exp:{self.low:g}"
        return f"uniform:{self.low:g},{self.high:g}"


def parse_spread(text: str, parameter: str, whole: bool = False) -> Spread:
    """``S``, ``exp:MEAN`` or ``uniform:LO,HI`` (0 or more; ``whole``: whole numbers, at least 1);
    ParameterError naming ``parameter``."""
    shape, sep, rest = str(text).strip().partition(":")
    if not sep:
        shape, rest = "fixed", shape
    values = [_number(part, parameter) for part in rest.split(",")]
    wanted = 2 if shape == "uniform" else 1
    if shape not in SHAPES or len(values) != wanted:
        raise ParameterError(parameter, f" takes S, exp:MEAN or uniform:LO,HI; got {text!r}")
    low, high = values[0], values[-1]
    if low < 0 or high < low:
        raise ParameterError(parameter, f" needs 0 <= LO <= HI; got {text!r}")
    if whole and (low < 1 or any(v != int(v) for v in values)):
        raise ParameterError(parameter, f" takes whole numbers of at least 1; got {text!r}")
    return Spread(shape, low, high)


def _number(part: str, parameter: str) -> float:
    try:
        value = float(part)
    except ValueError:
        raise ParameterError(parameter, f": {part.strip()!r} is not a number") from None
    if math.isnan(value) or math.isinf(value):
        raise ParameterError(parameter, f": {part.strip()!r} is not a finite number")
    return value


def parse_think(text: str) -> Spread:
    return parse_spread(text, "think_time")


def parse_tool_time(text: str) -> Spread:
    return parse_spread(text, "tool_time")


def parse_turns(text: str) -> Spread:
    return parse_spread(text, "turns", whole=True)
