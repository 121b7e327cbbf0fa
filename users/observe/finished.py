"""A finished request as its observers see it, and the one fan-out that hands it to each of them.

Every finished request reaches the live figures, the Prometheus exporter and a sweep's level
window through ``Observers`` once, as a ``Finished``: built from the record in the process that
ran the request, or decoded from the row a worker shipped to the master. The per-request CSV is
written from the same two sources (``request_log.py``), beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmclient.measure import RequestRecord
from llmclient.schema import from_fields, number


@dataclass(slots=True)
class Finished:
    """The figures of one finished request that the live observers use; names as the row's columns."""

    start_time: float | None
    success: bool
    cancelled: bool
    ttft_s: float | None
    tpot_s: float | None
    e2e_s: float | None
    decode_tps: float | None
    itl_s: Sequence[float]
    queue_s: float | None
    prompt_tokens: int | None
    cached_tokens: int | None
    output_tokens: int | None
    scheduled_time: float | None
    schedule_lag_s: float | None
    warm_cache: bool
    level: str
    # the model it asked for ("": the run's one model)
    model: str = ""

    @classmethod
    def of(cls, rec: RequestRecord) -> Finished:
        """A request finished in this process."""
        return cls(
            rec.start_time or None,
            rec.success,
            rec.cancelled,
            rec.ttft,
            rec.tpot,
            rec.e2e,
            rec.decode_tps,
            rec.itl,
            rec.queue,
            rec.prompt_tokens,
            rec.cached_tokens,
            rec.output_tokens,
            rec.scheduled_time,
            rec.schedule_lag,
            rec.warm_cache,
            rec.level,
            rec.model,
        )

    @classmethod
    def from_fields(cls, fields: list[str]) -> Finished:
        """A row a worker shipped (``schema.encode``'s fields), decoded."""
        row = from_fields(fields)
        itl = row["itl_s"]
        f = lambda name: number(row, name)  # noqa: E731
        i = lambda name: None if (n := number(row, name)) is None else int(n)  # noqa: E731
        return cls(
            f("start_time"),
            bool(row["success"]),
            bool(row["cancelled"]),
            f("ttft_s"),
            f("tpot_s"),
            f("e2e_s"),
            f("decode_tps"),
            itl if isinstance(itl, list) else (),
            f("queue_s"),
            i("prompt_tokens"),
            i("cached_tokens"),
            i("output_tokens"),
            f("scheduled_time"),
            f("schedule_lag_s"),
            bool(row["warm_cache"]),
            str(row["level"] or ""),
            str(row.get("model") or ""),
        )

    @property
    def end_time(self) -> float:
        """Unix seconds when it ended (now, when it has no start or no E2E)."""
        if self.start_time is None or self.e2e_s is None:
            return time.time()
        return self.start_time + self.e2e_s


Observer = Callable[[Finished], None]


class Observers:
    """The observers of a process's finished requests, each called once per request, in the order added."""

    def __init__(self) -> None:
        self._each: list[Observer] = []

    def add(self, observer: Observer) -> None:
        self._each.append(observer)

    def record(self, rec: RequestRecord) -> None:
        """A request finished in this process."""
        if self._each:
            self.observe(Finished.of(rec))

    def rows(self, rows: list[list[str]]) -> None:
        """Rows a worker shipped (at the master)."""
        if self._each:
            for fields in rows:
                self.observe(Finished.from_fields(fields))

    def observe(self, finished: Finished) -> None:
        for observer in self._each:
            observer(finished)
