"""The per-request CSV, driven with synthetic Locust events (no runner)."""

from __future__ import annotations

import csv

import gevent
import pytest
from locust.event import Events

from llmclient.measure import RequestRecord
from llmclient.schema import NAMES as COLUMNS
from llmclient.schema import decode, encode, from_fields
from users.request_log import REPORT_KEY, RequestLog


class Env:
    def __init__(self) -> None:
        self.events = Events()


def a_record(**kw) -> RequestRecord:
    rec = RequestRecord(
        start_time=1700000000.123456,
        request_id="chatcmpl-1",
        ttft=0.1234567891,
        e2e=1.5,
        prompt_tokens=2048,
        cached_tokens=1024,
        output_tokens=512,
        usage_source="server",
        finish_reason="length",
        status=200,
        success=True,
        itl=[0.0025, 0.0030001],
    )
    for k, v in kw.items():
        setattr(rec, k, v)
    return rec


def fire(env, rec, endpoint="chat"):
    env.events.request.fire(
        request_type="POST",
        name="/v1/chat/completions",
        response_time=1.0,
        response_length=1,
        exception=None,
        context={"llm_record": rec, "llm_endpoint": endpoint},
    )


def test_rows_are_written_exactly_and_reach_the_disk_within_100_ms(tmp_path):
    env = Env()
    path = tmp_path / "sub" / "run_requests.csv"
    log = RequestLog(str(path))
    log.register(env)
    fire(env, a_record())
    # TTFT/TPOT rows and other requests carry no llm_record: they are not rows
    env.events.request.fire(
        request_type="TTFT", name="x", response_time=1, response_length=0, exception=None, context={}
    )
    fire(env, a_record(success=False, error="HTTP 500 Internal Server Error:\nboom", ttft=None, e2e=None, itl=[]))
    gevent.sleep(RequestLog.DISK_FLUSH_S * 1.5)
    rows = list(csv.DictReader(path.open()))  # readable before close: flushed
    assert len(rows) == 2
    first = rows[0]
    assert list(first) == COLUMNS
    assert float(first["ttft_s"]) == 0.1234567891  # exact float round trip
    assert float(first["tpot_s"]) == (1.5 - 0.1234567891) / 511
    assert first["cached_tokens"] == "1024" and first["success"] == "true" and first["worker"] == "local"
    assert first["itl_s"] == "0.002500 0.003000"
    assert rows[1]["success"] == "false" and rows[1]["error"] == "HTTP 500 Internal Server Error: boom"
    assert rows[1]["ttft_s"] == "" and rows[1]["tpot_s"] == ""
    env.events.quit.fire(exit_code=0)
    assert path.read_text().endswith("\n")


def test_missing_cached_tokens_is_empty_not_zero():
    row = dict(zip(COLUMNS, encode(a_record(cached_tokens=None), "chat", "w1"), strict=True))
    assert row["cached_tokens"] == "" and row["worker"] == "w1" and row["cancelled"] == "false"


def test_a_row_decodes_to_the_record_it_was_encoded_from():
    rec = a_record(cancelled=True, success=False, error="cancelled: stopped")
    row = from_fields(encode(rec, "chat", "w1"))
    assert row["cancelled"] is True and row["success"] is False and row["endpoint"] == "chat"
    assert row["ttft_s"] == rec.ttft and row["e2e_s"] == rec.e2e and row["output_tokens"] == rec.output_tokens
    assert row["itl_s"] == pytest.approx(rec.itl, abs=0.5e-6) and row["cached_tokens"] == rec.cached_tokens  # 1 µs
    assert set(row) == set(COLUMNS)


def test_a_row_from_before_the_cancelled_column_takes_it_from_the_error():
    assert decode({"error": "cancelled: the test stopped", "success": "false"})["cancelled"] is True
    assert decode({"error": "HTTP 500", "success": "false"})["cancelled"] is False


def test_worker_ships_rows_in_reports_and_master_writes_them(tmp_path):
    worker_env, master_env = Env(), Env()
    worker = RequestLog(None, worker="host_abc", forward=True)
    worker.register(worker_env)
    master_path = tmp_path / "m_requests.csv"
    master = RequestLog(str(master_path))
    master.register(master_env)
    for i in range(3):
        fire(worker_env, a_record(request_id=f"r{i}"))
    data: dict = {}
    worker_env.events.report_to_master.fire(client_id="host_abc", data=data)
    assert len(data[REPORT_KEY]) == 3
    again: dict = {}
    worker_env.events.report_to_master.fire(client_id="host_abc", data=again)
    assert REPORT_KEY not in again  # each row travels once
    received = []
    master.on_rows = lambda worker, n: received.append((worker, n))
    master_env.events.worker_report.fire(client_id="host_abc", data=data)
    assert received == [("host_abc", 3)]
    gevent.sleep(RequestLog.DISK_FLUSH_S * 1.5)
    rows = list(csv.DictReader(master_path.open()))
    assert [r["request_id"] for r in rows] == ["r0", "r1", "r2"]
    assert {r["worker"] for r in rows} == {"host_abc"}


def test_worker_ships_pending_rows_at_test_stop():
    env = Env()
    log = RequestLog(None, worker="w1", forward=True)
    log.register(env)
    sent = []
    log._send = lambda kind, data: sent.append((kind, data))
    fire(env, a_record(request_id="x"))
    env.events.test_stop.fire(environment=env)
    assert sent and sent[0][0] == "llm_rows" and sent[0][1]["rows"][0][0] == "x"
    env.events.test_stop.fire(environment=env)
    assert len(sent) == 1  # nothing pending, nothing sent


def test_text_fields_round_trip_through_a_csv_reader(tmp_path):
    """Rows are joined by hand (the csv module is slow on the long ITL field): quoting must still hold."""
    path = tmp_path / "run_requests.csv"
    log = RequestLog(str(path), worker='host,"x"')
    env = Env()
    log.register(env)
    nasty = 'HTTP 400 Bad Request: "messages" must be a list, got {"a": 1}\nat line 2'
    fire(env, a_record(success=False, error=nasty, request_id='id,with "quotes"', finish_reason="a,b"))
    env.events.quit.fire(exit_code=0)
    (row,) = list(csv.DictReader(path.open(newline="")))
    assert row["error"] == " ".join(nasty.split())
    assert row["request_id"] == 'id,with "quotes"' and row["finish_reason"] == "a,b"
    assert row["worker"] == 'host,"x"' and row["itl_s"] == "0.002500 0.003000"
    assert list(row) == COLUMNS
