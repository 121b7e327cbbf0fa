"""The one fan-out that hands each finished request's row to the run's live observers.

Every finished request reaches the live figures, the Prometheus exporter and a sweep's level window
through ``Observers`` once, as a ``Row`` (llmclient/schema.py): the row of a request this process ran, or
one a worker shipped to the master, decoded. The per-request CSV is written from the same rows
(``request_log.py``), beside it.
"""

from __future__ import annotations

from collections.abc import Callable

from llmclient.schema import Row

Observer = Callable[[Row], None]


class Observers:
    """The observers of a process's finished requests, each called once per request, in the order added."""

    def __init__(self) -> None:
        self._each: list[Observer] = []

    def add(self, observer: Observer) -> None:
        self._each.append(observer)

    def rows(self, shipped: list[list[str]]) -> None:
        """Rows a worker shipped (at the master)."""
        if self._each:
            for fields in shipped:
                self.observe(Row.from_fields(fields))

    def observe(self, row: Row) -> None:
        for observer in self._each:
            observer(row)
