"""The client's own CPU: is the load generator the bottleneck?

Once a second a process reads its threads' scheduler statistics (``/proc/self/task/*/schedstat``:
nanoseconds on a CPU and nanoseconds runnable but waiting for one) and takes the share of one core it
used or waited for over that second. A client near 1 cannot send or read on time: its TTFT and ITL
then include its own delays. A process whose share was over ``BOUND_SHARE`` for more than
``BOUND_FRACTION`` of its seconds was CPU-bound. Where ``/proc`` has no schedstat, the process's CPU
time (``time.process_time``) stands in (waiting unseen). No Locust, no gevent: the caller samples.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable
from dataclasses import dataclass

BOUND_SHARE = 0.9
BOUND_FRACTION = 0.1
BOTTLENECK = "the client was the bottleneck: add --processes or workers"


def read_schedstat() -> float:
    """Seconds this process's threads were on a CPU or waiting for one (``process_time`` without /proc)."""
    total = 0
    found = False
    for path in glob.glob("/proc/self/task/*/schedstat"):
        try:
            with open(path) as f:
                run, wait = f.read().split()[:2]
        except (OSError, ValueError):
            # a thread that ended meanwhile
            continue
        total += int(run) + int(wait)
        found = True
    return total / 1e9 if found else time.process_time()


@dataclass
class CpuGuard:
    """Samples of one process's CPU share; ``sample()`` once a second."""

    read: Callable[[], float] = read_schedstat
    clock: Callable[[], float] = time.monotonic
    # CPU time alone (no waiting): the cost of the work
    cpu_time: Callable[[], float] = time.process_time
    # sampled time
    seconds: float = 0.0
    # CPU time used in it
    cpu_seconds: float = 0.0
    # of it, above BOUND_SHARE
    bound_seconds: float = 0.0
    # the highest share since the last ``take_peak``
    peak: float = 0.0
    # the highest share of the run
    max_share: float = 0.0
    last_share: float | None = None

    def __post_init__(self) -> None:
        self._at = self.clock()
        self._used = self.read()
        self._cpu = self.cpu_time()

    def sample(self) -> float | None:
        """The share of a core since the last sample (None when no time has passed)."""
        now, used, cpu = self.clock(), self.read(), self.cpu_time()
        elapsed = now - self._at
        if elapsed <= 0:
            return None
        share = max(0.0, (used - self._used) / elapsed)
        self.cpu_seconds += max(0.0, cpu - self._cpu)
        self._at, self._used, self._cpu = now, used, cpu
        self.seconds += elapsed
        if share > BOUND_SHARE:
            self.bound_seconds += elapsed
        self.peak = max(self.peak, share)
        self.max_share = max(self.max_share, share)
        self.last_share = share
        return share

    def take_peak(self) -> float | None:
        """The highest share since the last call (a scrape's column), then start again."""
        peak, self.peak = self.peak, 0.0
        return peak if self.seconds else None

    def report(self) -> dict[str, float]:
        return {
            "seconds": self.seconds,
            "bound_seconds": self.bound_seconds,
            "max_share": self.max_share,
            "cpu_seconds": self.cpu_seconds,
        }


def verdict(reports: list[dict[str, float]]) -> dict[str, float | bool]:
    """The run's verdict over its load processes' reports: the busiest process decides."""
    bound = any(r["seconds"] > 0 and r["bound_seconds"] / r["seconds"] > BOUND_FRACTION for r in reports)
    return {"client_cpu_max_share": max((r["max_share"] for r in reports), default=0.0), "client_cpu_bound": bound}
