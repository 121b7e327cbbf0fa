"""Proof of the schedule: did the requests go out when they were due?

From each request's scheduled time and its lag (scheduled -> released by the scheduler):
the scheduled rate (the drawn schedule's own: a Poisson sample of 60 arrivals at 20 req/s
spans anywhere near 17-23 req/s), the achieved rate (the releases'), and the lag's
p50/p99/max. The schedule slipped when the achieved rate fell short of the scheduled one or
the lag grew: then the run measured another load than the one asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# achieved more than 2% below requested: slipped
MAX_RATE_SHORTFALL = 0.02
# or a lag p99 over 10 ms
MAX_LAG_P99_S = 0.010


@dataclass(frozen=True)
class ScheduleProof:
    requests: int
    # (n - 1) / (last scheduled - first scheduled)
    scheduled_rate: float
    # (n - 1) / (last release - first release)
    achieved_rate: float
    lag_p50_s: float
    lag_p99_s: float
    lag_max_s: float

    @property
    def slipped(self) -> bool:
        short = self.achieved_rate < self.scheduled_rate * (1 - MAX_RATE_SHORTFALL)
        return short or self.lag_p99_s > MAX_LAG_P99_S

    def warning(self) -> str:
        """One line, or "" when the schedule held."""
        if not self.slipped:
            return ""
        return (
            f"the schedule slipped: achieved {self.achieved_rate:.2f} of {self.scheduled_rate:.2f} scheduled req/s, "
            f"lag p99 {self.lag_p99_s * 1e3:.1f} ms (max {self.lag_max_s * 1e3:.1f} ms): the latencies are not those "
            "of the requested load (add client processes or workers, or lower the rate)"
        )

    def as_summary(self, requested_rate: float | None = None) -> dict[str, float]:
        """Under the summary JSON's key names; ``requested_rate`` is the configured rate, where there is one."""
        return {
            "requested_rate": self.scheduled_rate if requested_rate is None else requested_rate,
            "scheduled_rate": self.scheduled_rate,
            "achieved_rate": self.achieved_rate,
            "schedule_lag_p50_ms": self.lag_p50_s * 1e3,
            "schedule_lag_p99_ms": self.lag_p99_s * 1e3,
            "schedule_lag_max_ms": self.lag_max_s * 1e3,
        }


def prove(scheduled: Sequence[float], lags: Sequence[float]) -> ScheduleProof | None:
    """The proof for requests with these scheduled unix times and lags (None for fewer than 2)."""
    due = np.asarray(scheduled, dtype=float)
    lag = np.asarray(lags, dtype=float)
    keep = ~(np.isnan(due) | np.isnan(lag))
    due, lag = due[keep], lag[keep]
    if due.size < 2:
        return None
    sent = due + lag
    span_due = float(due.max() - due.min())
    span_sent = float(sent.max() - sent.min())
    n = due.size - 1
    return ScheduleProof(
        requests=int(due.size),
        scheduled_rate=n / span_due if span_due > 0 else float("inf"),
        achieved_rate=n / span_sent if span_sent > 0 else float("inf"),
        lag_p50_s=float(np.percentile(lag, 50)),
        lag_p99_s=float(np.percentile(lag, 99)),
        lag_max_s=float(lag.max()),
    )
