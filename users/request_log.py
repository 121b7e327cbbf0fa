"""The per-request CSV: one row for every issued request, written beside Locust's CSVs.

``RequestLog.register(environment)`` listens to Locust's ``request`` event and
keeps the rows whose ``context`` carries an ``llm_record``. In a local run it
writes ``PREFIX_requests.csv`` directly; on a worker it batches rows into the
periodic reports to the master, which writes them with the worker's id.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, TextIO

import gevent

from users.record import RequestRecord

logger = logging.getLogger(__name__)

COLUMNS = [
    "request_id",
    "start_time",
    "endpoint",
    "status",
    "success",
    "error",
    "ttft_s",
    "tpot_s",
    "e2e_s",
    "decode_tps",
    "prompt_tokens",
    "cached_tokens",
    "output_tokens",
    "usage_source",
    "finish_reason",
    "itl_s",
    "worker",
]
REPORT_KEY = "llm_rows"
ROWS_MESSAGE = "llm_rows"


def _num(value: float | int | None) -> str:
    if value is None:
        return ""
    return repr(value)


def _gaps(itl: list[float]) -> str:
    """Space-separated seconds at 1 µs resolution, formatted in one call."""
    return ("%.6f " * len(itl) % tuple(itl))[:-1] if itl else ""


def _text(value: str) -> str:
    """A CSV field for text that may hold a delimiter or a quote (quoted as the csv module does)."""
    if "," in value or '"' in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def record_to_row(rec: RequestRecord, endpoint: str, worker: str) -> list[str]:
    """A CSV row, each field ready to join with commas (see ``csv_line``).

    Floats keep full precision (repr); ITL gaps are rounded to 1 µs. Numbers and
    our own words need no quoting; text from the server or an error is quoted
    when it needs it.
    """
    return [
        _text(rec.request_id),
        _num(rec.start_time),
        endpoint,
        str(rec.status) if rec.status else "",
        "true" if rec.success else "false",
        _text(" ".join(rec.error.split())),
        _num(rec.ttft),
        _num(rec.tpot),
        _num(rec.e2e),
        _num(rec.decode_tps),
        _num(rec.prompt_tokens),
        _num(rec.cached_tokens),
        _num(rec.output_tokens),
        rec.usage_source,
        _text(rec.finish_reason),
        _gaps(rec.itl),
        _text(worker),
    ]


def csv_line(row: list[str]) -> str:
    """One line of the CSV. The csv module's writer scans every character of the long ITL
    field (about 30 µs a row, measured); the fields are already quoted where needed."""
    return ",".join(row) + "\n"


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
    def register(self, environment: Any) -> None:
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

    def on_request(self, context: dict | None = None, **_kw: object) -> None:
        rec = context.get("llm_record") if context else None
        if rec is None:
            return
        # formatted now: batching it (measured) concentrates the work of requests that end together
        row = record_to_row(rec, context.get("llm_endpoint", ""), self.worker)
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

    def on_rows_message(self, environment: Any = None, msg: Any = None, **_kw: object) -> None:
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
        if self._file is None:
            self._open()
        self._file.write("".join(map(csv_line, rows)))
        # one flush (a write syscall) per DISK_FLUSH_S rather than per row
        self._unflushed = True
        if self._disk_flusher is None or self._disk_flusher.dead:
            self._disk_flusher = gevent.spawn_later(self.DISK_FLUSH_S, self.flush)

    def flush(self) -> None:
        if self._unflushed and self._file is not None:
            self._file.flush()
            self._unflushed = False

    def _open(self) -> None:
        folder = os.path.dirname(self.path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed on quit
        self._file.write(csv_line(COLUMNS))
        self._file.flush()

    def close(self) -> None:
        if self._disk_flusher is not None:
            self._disk_flusher.kill(block=False)
            self._disk_flusher = None
        if self._file is not None:
            self._file.close()
            self._file = None
