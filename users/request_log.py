"""The per-request CSV: one row for every issued request, written beside Locust's CSVs.

``RequestLog.register(environment)`` listens to Locust's ``request`` event and
keeps the rows whose ``context`` carries a record (see recorder.py). In a local run it
writes ``PREFIX_requests.csv`` directly; on a worker it batches rows into the
periodic reports to the master, which writes them with the worker's id.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

import gevent

from llmclient.schema import HEADER, csv_line, encode
from users.recorder import ENDPOINT_KEY, RECORD_KEY

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.rpc.protocol import Message

logger = logging.getLogger(__name__)

REPORT_KEY = "llm_rows"
ROWS_MESSAGE = "llm_rows"


class RequestLog:
    """Collects per-request rows and writes them (local, master) or ships them (worker)."""

    FLUSH_INTERVAL_S = 0.5  # a worker ships rows at least this often, besides its periodic reports
    DISK_FLUSH_S = 0.1  # rows reach the disk at least this often (and at close: Ctrl-C loses none)

    def __init__(self, path: str | None, worker: str = "local", forward: bool = False) -> None:
        self.path = path
        self.worker = worker
        self.forward = forward  # True on a worker: rows go to the master
        self.on_rows: Callable[[str, int], None] | None = None  # master: rows received from a worker
        self.on_rows_data: Callable[[list[list[str]]], None] | None = None  # master: the rows themselves
        self._send: Callable[[str, Any], None] | None = None
        self._pending: list[list[str]] = []  # worker: rows not yet shipped
        self._unflushed = False
        self._file: TextIO | None = None
        self._flusher: Any = None
        self._disk_flusher: Any = None

    # -- Locust wiring ---------------------------------------------------------
    def register(self, environment: Environment) -> None:
        events = environment.events
        events.request.add_listener(self.on_request)
        if self.forward:
            events.report_to_master.add_listener(self.on_report_to_master)
            events.test_stop.add_listener(self.ship)
            events.quitting.add_listener(self.ship)
        else:
            events.worker_report.add_listener(self.on_worker_report)
        events.quit.add_listener(self.on_quit)

    def ship_with(self, send: Callable[[str, Any], None]) -> None:
        """Worker: also ship rows every FLUSH_INTERVAL_S through ``send(message_type, rows)``."""
        self._send = send

        def loop() -> None:
            while True:
                gevent.sleep(self.FLUSH_INTERVAL_S)
                self.ship()

        self._flusher = gevent.spawn(loop)

    def on_request(self, context: dict[str, Any] | None = None, **_kw: object) -> None:
        rec = context.get(RECORD_KEY) if context else None
        if rec is None or context is None:
            return
        # formatted now: batching it (measured) concentrates the work of requests that end together
        row = encode(rec, context.get(ENDPOINT_KEY, ""), self.worker)
        if self.forward:
            self._pending.append(row)
        else:
            self.write_rows([row])

    def ship(self, **_kw: object) -> None:
        """Worker: send the pending rows to the master now."""
        if self._pending and self._send is not None:
            rows, self._pending = self._pending, []
            self._send(ROWS_MESSAGE, {"rows": rows})

    def on_report_to_master(self, client_id: str, data: dict, **_kw: object) -> None:
        if self._pending:
            data[REPORT_KEY], self._pending = self._pending, []

    def on_worker_report(self, client_id: str, data: dict, **_kw: object) -> None:
        self.receive(client_id, data.get(REPORT_KEY))

    def on_rows_message(
        self, environment: Environment | None = None, msg: Message | None = None, **_kw: object
    ) -> None:
        if msg is not None:
            self.receive(msg.node_id, (msg.data or {}).get("rows"))

    def receive(self, worker: str, rows: list[list[str]] | None) -> None:
        if rows:
            self.write_rows(rows)
            if self.on_rows_data is not None:
                self.on_rows_data(rows)
            if self.on_rows is not None:
                self.on_rows(worker, len(rows))

    def on_quit(self, **_kw: object) -> None:
        if self._flusher is not None:
            self._flusher.kill(block=False)
        self.close()

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
