"""The per-request CSV: one row for every issued request, written beside Locust's CSVs.

A local run adds each finished request's row (``add``) and the rows are written to
``PREFIX_requests.csv`` at once; a worker keeps its rows for the master (``take_pending``,
shipped by ``distributed/worker.py``); the master writes the rows its workers ship
(``write_rows``), each with its worker's id. No Locust here: runtime/observing.py wires it.
"""

from __future__ import annotations

import logging
import os
from typing import Any, TextIO

import gevent

from llmclient.schema import HEADER, Row, csv_line

logger = logging.getLogger(__name__)


class RequestLog:
    """Collects per-request rows and writes them (local, master) or keeps them to ship (worker)."""

    # rows reach the disk at least this often (and at close: Ctrl-C loses none)
    DISK_FLUSH_S = 0.1

    def __init__(self, path: str | None, forward: bool = False) -> None:
        self.path = path
        # True on a worker: rows go to the master
        self.forward = forward
        # worker: rows not yet shipped
        self._pending: list[list[str]] = []
        self._unflushed = False
        self._file: TextIO | None = None
        self._disk_flusher: Any = None

    def add(self, row: Row) -> None:
        """A request finished in this process."""
        # formatted now: batching it (measured) concentrates the work of requests that end together
        fields = row.fields()
        if self.forward:
            self._pending.append(fields)
        else:
            self.write_rows([fields])

    def take_pending(self) -> list[list[str]]:
        """Worker: the rows not shipped yet, each handed out once."""
        rows, self._pending = self._pending, []
        return rows

    # -- file ----------------------------------------------------------------
    def write_rows(self, rows: list[list[str]]) -> None:
        if self.path is None:
            return
        file = self._file or self._open(self.path)
        file.write("".join(map(csv_line, rows)))
        # one flush (a write syscall) per DISK_FLUSH_S rather than per row
        self._unflushed = True
        if self._disk_flusher is None or self._disk_flusher.dead:
            self._disk_flusher = gevent.spawn_later(self.DISK_FLUSH_S, self.flush)

    def flush(self) -> None:
        if self._unflushed and self._file is not None:
            self._file.flush()
            self._unflushed = False

    def _open(self, path: str) -> TextIO:
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        file = self._file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed on quit
        file.write(HEADER)
        file.flush()
        return file

    def close(self) -> None:
        if self._disk_flusher is not None:
            self._disk_flusher.kill(block=False)
            self._disk_flusher = None
        if self._file is not None:
            self._file.close()
            self._file = None
