"""``--otlp-port``: the server's spans received during the run (OTLP/HTTP, ``POST /v1/traces``), kept by trace
id and written to ``PREFIX_server_spans.csv`` as they come; when the run ends, joined into
``PREFIX_requests.csv``'s server timing columns (``llmclient/spans.py``). Local process or master only."""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

import gevent
from gevent.pywsgi import WSGIServer

from llmclient.errors import ConfigError
from llmclient.spans import EMPTY_RESPONSE, SPANS_FILE_COLUMNS, join_into, parse_export

logger = logging.getLogger(__name__)

# how long the end of the run waits for late spans (vLLM exports a batch every 5 s)
GRACE_S = 10.0


class OtlpReceiver:
    def __init__(self, port: int, csv_prefix: str | None) -> None:
        self.spans: dict[str, dict[str, float]] = {}
        self.path = f"{csv_prefix}_server_spans.csv" if csv_prefix else None
        self._file: TextIO | None = None
        self._writer: Any = None
        self.server = WSGIServer(("", port), self.app, log=None, error_log=None)
        try:
            self.server.start()
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ConfigError(f"--otlp-port {port}: cannot listen there ({why})") from None
        logger.info("receiving the server's OTLP spans on port %d (POST /v1/traces)", port)

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST" or not environ.get("PATH_INFO", "").endswith("/v1/traces"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"OTLP/HTTP traces only: POST /v1/traces\n"]
        body = environ["wsgi.input"].read()
        try:
            spans = parse_export(body, environ.get("HTTP_CONTENT_ENCODING", ""))
        except ValueError as exc:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [f"{exc}\n".encode()]
        for trace_id, timings in spans:
            self.spans[trace_id] = timings
            self._write(trace_id, timings)
        start_response("200 OK", [("Content-Type", "application/x-protobuf")])
        return [EMPTY_RESPONSE]

    def _write(self, trace_id: str, timings: dict[str, float]) -> None:
        if self.path is None:
            return
        if self._writer is None:
            self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in finish()
            self._writer = csv.DictWriter(self._file, SPANS_FILE_COLUMNS, lineterminator="\n")
            self._writer.writeheader()
        self._writer.writerow({"trace_id": trace_id, **{k: repr(v) for k, v in timings.items()}})
        if self._file is not None:
            self._file.flush()

    def finish(self, requests_csv: str | None) -> None:
        """The run is over: wait (up to GRACE_S) for the spans of every traced row, join them, stop."""
        if requests_csv and os.path.exists(requests_csv):
            wanted = traced_rows(requests_csv)
            deadline = time.monotonic() + GRACE_S
            while wanted - self.spans.keys() and time.monotonic() < deadline:
                gevent.sleep(0.2)
            joined = join_into(requests_csv, self.spans)
            logger.info("the server's spans: %d of %d traced requests joined to their rows", joined, len(wanted))
        self.server.stop(timeout=1)
        if self._file is not None:
            self._file.close()
            self._file = None


def traced_rows(path: str) -> set[str]:
    """The trace ids of a ``_requests.csv``'s requests that reached the server (a status)."""
    with open(path, newline="", encoding="utf-8") as f:
        return {row["trace_id"] for row in csv.DictReader(f) if row.get("trace_id") and row.get("status")}
