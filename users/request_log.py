"""The per-request CSV: one row for every issued request, written beside Locust's CSVs.

``RequestLog.register(environment)`` listens to Locust's ``request`` event and
keeps the rows whose ``context`` carries an ``llm_record``. In a local run it
writes ``PREFIX_requests.csv`` directly; on a worker it batches rows into the
periodic reports to the master, which writes them with the worker's id.
"""

from __future__ import annotations

import csv
import logging
import os
from typing import Any, TextIO

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


def _num(value: float | int | None) -> str:
    if value is None:
        return ""
    return repr(value)


def record_to_row(rec: RequestRecord, endpoint: str, worker: str) -> list[str]:
    """A CSV row. Floats keep full precision (repr); ITL gaps are rounded to 1 µs."""
    return [
        rec.request_id,
        _num(rec.start_time),
        endpoint,
        str(rec.status) if rec.status else "",
        "true" if rec.success else "false",
        " ".join(rec.error.split()),
        _num(rec.ttft),
        _num(rec.tpot),
        _num(rec.e2e),
        _num(rec.decode_tps),
        _num(rec.prompt_tokens),
        _num(rec.cached_tokens),
        _num(rec.output_tokens),
        rec.usage_source,
        rec.finish_reason,
        " ".join(f"{g:.6f}" for g in rec.itl),
        worker,
    ]


class RequestLog:
    """Collects per-request rows and writes or forwards them."""

    def __init__(self, path: str | None, worker: str = "local", forward: bool = False) -> None:
        self.path = path
        self.worker = worker
        self.forward = forward  # True on a worker: rows go to the master
        self.rows_written = 0
        self._pending: list[list[str]] = []
        self._file: TextIO | None = None
        self._writer: Any = None

    # -- Locust wiring ---------------------------------------------------------
    def register(self, environment: Any) -> None:
        events = environment.events
        events.request.add_listener(self.on_request)
        if self.forward:
            events.report_to_master.add_listener(self.on_report_to_master)
        else:
            events.worker_report.add_listener(self.on_worker_report)
        events.quitting.add_listener(self.on_quitting)

    def on_request(self, context: dict | None = None, **_kw: object) -> None:
        rec = context.get("llm_record") if context else None
        if rec is None:
            return
        row = record_to_row(rec, context.get("llm_endpoint", ""), self.worker)
        if self.forward:
            self._pending.append(row)
        else:
            self.write_rows([row])

    def on_report_to_master(self, client_id: str, data: dict, **_kw: object) -> None:
        if self._pending:
            data[REPORT_KEY], self._pending = self._pending, []

    def on_worker_report(self, client_id: str, data: dict, **_kw: object) -> None:
        rows = data.get(REPORT_KEY)
        if rows:
            self.write_rows(rows)

    def on_quitting(self, **_kw: object) -> None:
        self.close()

    # -- file ----------------------------------------------------------------
    def write_rows(self, rows: list[list[str]]) -> None:
        self.rows_written += len(rows)
        if self.path is None:
            return
        if self._writer is None:
            self._open()
        self._writer.writerows(rows)
        self._file.flush()  # a row on disk per completed request: Ctrl-C loses nothing

    def _open(self) -> None:
        folder = os.path.dirname(self.path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed on quit
        self._writer = csv.writer(self._file, lineterminator="\n")
        self._writer.writerow(COLUMNS)
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None
