"""The per-request CSV, and the rows a worker ships to the master (both sides of the channel, fake runners)."""

from __future__ import annotations

import csv
import dataclasses
from types import SimpleNamespace

import gevent
import pytest
from locust.event import Events

from llmclient.measure import RequestRecord
from llmclient.schema import NAMES as COLUMNS
from llmclient.schema import Row
from users.distributed import protocol
from users.distributed.master import MasterSide
from users.distributed.worker import WorkerSide
from users.observe.cpu_watch import CpuWatch
from users.observe.observers import Observers
from users.observe.request_log import RequestLog


class Env:
    def __init__(self) -> None:
        self.events = Events()


class FakeRunner:
    """Locust's message channel, one end: what was sent, and the listeners registered."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []
        self.listeners: dict[str, object] = {}

    def send_message(self, name, data, client_id=None) -> None:
        self.sent.append((name, data))

    def register_message(self, name, listener) -> None:
        self.listeners[name] = listener


def worker_side(env, log) -> tuple[WorkerSide, FakeRunner]:
    runner = FakeRunner()
    side = WorkerSide(runner, SimpleNamespace(context=SimpleNamespace(in_flight=0)), log, CpuWatch())
    side.wire()
    # as runtime/roles.py wires it
    env.events.report_to_master.add_listener(side.on_report_to_master)
    env.events.test_stop.add_listener(side.ship)
    return side, runner


def a_record(**kw) -> RequestRecord:
    rec = RequestRecord(
        start_time=1700000000.123456,
        request_id="chatcmpl-1",
        ttft_s=0.1234567891,
        e2e_s=1.5,
        prompt_tokens=2048,
        cached_tokens=1024,
        output_tokens=512,
        usage_source="server",
        finish_reason="length",
        status=200,
        success=True,
        itl_s=[0.0025, 0.0030001],
    )
    for k, v in kw.items():
        setattr(rec, k, v)
    return rec


def add(log: RequestLog, rec: RequestRecord, worker: str = "local") -> None:
    """A request of this process, as runtime/roles.py adds it."""
    log.add(Row.of(rec, "chat", worker))


def test_rows_are_written_exactly_and_reach_the_disk_within_100_ms(tmp_path):
    path = tmp_path / "sub" / "run_requests.csv"
    log = RequestLog(str(path))
    add(log, a_record())
    add(log, a_record(success=False, error="HTTP 500 Internal Server Error:\nboom", ttft_s=None, e2e_s=None, itl_s=[]))
    gevent.sleep(RequestLog.DISK_FLUSH_S * 1.5)
    # readable before close: flushed
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 2
    first = rows[0]
    assert list(first) == COLUMNS
    # exact float round trip
    assert float(first["ttft_s"]) == 0.1234567891
    assert float(first["tpot_s"]) == (1.5 - 0.1234567891) / 511
    assert first["cached_tokens"] == "1024" and first["success"] == "true" and first["worker"] == "local"
    assert first["itl_s"] == "0.002500 0.003000"
    assert rows[1]["success"] == "false" and rows[1]["error"] == "HTTP 500 Internal Server Error: boom"
    assert rows[1]["ttft_s"] == "" and rows[1]["tpot_s"] == ""
    log.close()
    assert path.read_text().endswith("\n")


def test_missing_cached_tokens_is_empty_not_zero():
    row = dict(zip(COLUMNS, Row.of(a_record(cached_tokens=None), "chat", "w1").fields(), strict=True))
    assert row["cached_tokens"] == "" and row["worker"] == "w1" and row["cancelled"] == "false"


def test_a_row_decodes_to_the_row_it_was_encoded_from():
    rec = a_record(cancelled=True, success=False, error="cancelled: stopped")
    row = Row.from_fields(Row.of(rec, "chat", "w1").fields())
    assert row.cancelled is True and row.success is False and row.endpoint == "chat"
    assert row.ttft_s == rec.ttft_s and row.e2e_s == rec.e2e_s and row.output_tokens == rec.output_tokens
    # 1 µs
    assert row.itl_s == pytest.approx(rec.itl_s, abs=0.5e-6) and row.cached_tokens == rec.cached_tokens
    # every other field exactly
    original = Row.of(rec, "chat", "w1")
    assert dataclasses.replace(row, itl_s=original.itl_s) == original


def test_a_row_from_before_the_cancelled_column_takes_it_from_the_error():
    assert Row.from_mapping({"error": "cancelled: the test stopped", "success": "false"}).cancelled is True
    assert Row.from_mapping({"error": "HTTP 500", "success": "false"}).cancelled is False


def test_worker_ships_rows_in_reports_and_master_writes_and_observes_them(tmp_path):
    worker_env, master_env = Env(), Env()
    worker_log = RequestLog(None, forward=True)
    worker_side(worker_env, worker_log)
    master_path = tmp_path / "m_requests.csv"
    master_log, observers, seen = RequestLog(str(master_path)), Observers(), []
    observers.add(seen.append)
    master = MasterSide(FakeRunner(), master_log, observers, CpuWatch(), on_fatal=print)
    master.wire()
    master_env.events.worker_report.add_listener(master.on_worker_report)
    for i in range(3):
        add(worker_log, a_record(request_id=f"r{i}"), "host_abc")
    data: dict = {}
    worker_env.events.report_to_master.fire(client_id="host_abc", data=data)
    assert len(data[protocol.REPORT_ROWS]) == 3 and data[protocol.REPORT_IN_FLIGHT] == 0
    again: dict = {}
    worker_env.events.report_to_master.fire(client_id="host_abc", data=again)
    # each row travels once
    assert protocol.REPORT_ROWS not in again
    master_env.events.worker_report.fire(client_id="host_abc", data=data)
    # the same record a local run observes
    local = [Row.of(a_record(request_id=f"r{i}"), "chat", "host_abc") for i in range(3)]
    assert [dataclasses.replace(row, itl_s=a.itl_s) for row, a in zip(seen, local, strict=True)] == local
    gevent.sleep(RequestLog.DISK_FLUSH_S * 1.5)
    rows = list(csv.DictReader(master_path.open()))
    assert [r["request_id"] for r in rows] == ["r0", "r1", "r2"]
    assert {r["worker"] for r in rows} == {"host_abc"}


def test_worker_ships_pending_rows_at_test_stop():
    env = Env()
    log = RequestLog(None, forward=True)
    side, runner = worker_side(env, log)
    add(log, a_record(request_id="x"), "w1")
    env.events.test_stop.fire(environment=env)
    assert runner.sent and runner.sent[0][0] == protocol.ROWS and runner.sent[0][1]["rows"][0][0] == "x"
    env.events.test_stop.fire(environment=env)
    # nothing pending, nothing sent
    assert len(runner.sent) == 1
    side.stop_shipping()


def test_text_fields_round_trip_through_a_csv_reader(tmp_path):
    """Rows are joined by hand (the csv module is slow on the long ITL field): quoting must still hold."""
    path = tmp_path / "run_requests.csv"
    log = RequestLog(str(path))
    nasty = 'HTTP 400 Bad Request: "messages" must be a list, got {"a": 1}\nat line 2'
    rec = a_record(success=False, error=nasty, request_id='id,with "quotes"', finish_reason="a,b")
    add(log, rec, 'host,"x"')
    log.close()
    (row,) = list(csv.DictReader(path.open(newline="")))
    assert row["error"] == " ".join(nasty.split())
    assert row["request_id"] == 'id,with "quotes"' and row["finish_reason"] == "a,b"
    assert row["worker"] == 'host,"x"' and row["itl_s"] == "0.002500 0.003000"
    assert list(row) == COLUMNS


def test_every_message_the_sides_use_is_in_the_protocols_table_and_every_entry_is_used():
    import re

    from tests.procs import ROOT

    text = "".join((ROOT / "users" / "distributed" / f).read_text() for f in ("master.py", "worker.py"))
    used = {
        getattr(protocol, name) for name in re.findall(r"protocol\.([A-Z_]+)\b", text) if not name.startswith("REPORT_")
    }
    assert used == {m.name for m in protocol.MESSAGES}
