"""The per-request row: its columns, their types, and the one encoding and decoding of them.

Used by the request log (writes ``PREFIX_requests.csv`` and ships rows to the master),
the live figures (read shipped rows back) and the reports (load the CSV). Imports no Locust.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from llmclient.measure import RequestRecord

Kind = Literal["text", "float", "int", "bool", "gaps"]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind
    meaning: str


COLUMNS: tuple[Column, ...] = (
    Column("request_id", "text", "the server's response id"),
    Column("start_time", "float", "unix seconds, when the request was sent"),
    Column("endpoint", "text", "chat or completions"),
    Column("status", "int", "the HTTP status"),
    Column("success", "bool", "true/false"),
    Column("error", "text", "the failure reason (for a cancelled request, why it was cut off)"),
    Column("ttft_s", "float", "time to first token, seconds"),
    Column("tpot_s", "float", "time per output token, seconds"),
    Column("e2e_s", "float", "end-to-end latency, seconds"),
    Column("decode_tps", "float", "1 / TPOT"),
    Column("prompt_tokens", "int", "from the server's usage"),
    Column("cached_tokens", "int", "from the server's usage (prompt_tokens_details)"),
    Column("output_tokens", "int", "from the server's usage"),
    Column("usage_source", "text", "server, or chunks when the server sent no usage"),
    Column("finish_reason", "text", "stop, length, ..."),
    Column("itl_s", "gaps", "the inter-token gaps, space-separated seconds (1 µs resolution)"),
    Column("worker", "text", "local, or the Locust worker's id"),
    Column("cancelled", "bool", "true when the end of the test cut the request off (not a failure)"),
    Column("scheduled_time", "float", "open loop: unix seconds when the request was due"),
    Column("schedule_lag_s", "float", "open loop: how much later than due it was sent (less queue_s), seconds"),
    Column("queue_s", "float", "open loop: then how long it waited for --max-concurrency, seconds"),
    Column("stage", "text", "open loop: its --stages number"),
    Column("warm_cache", "bool", "the prompt's unique part was already cached: a cache warm from an earlier run"),
    Column("level", "text", "sweep or capacity search: its level number (PREFIX_levels.csv says what it was)"),
    Column("trace_index", "int", "trace replay: the request's row in the trace (0-based, in time order)"),
    Column("ideal_cached_tokens", "int", "trace replay: the tokens an unbounded prefix cache would hold for it"),
    Column("host", "text", "the host (of -H's) the request went to"),
    Column("repeat", "int", "--repeat: which repetition of the workload or of its level (1-based)"),
    Column("model", "text", "the model (or LoRA adapter) the request asked for"),
    Column(
        "answer_ttft_s", "float", "time to the first answer token (not reasoning), seconds: a reasoning model's wait"
    ),
    Column("reasoning_tokens", "int", "reasoning tokens: the server's usage where it says, else the reasoning chunks"),
    Column("image_count", "int", "--images: the images in the request's prompt"),
    Column("trace_id", "text", "--trace-context: the W3C trace id sent in the request's traceparent header"),
    Column("server_queue_s", "float", "--otlp-port: the server's span's time in queue, seconds"),
    Column("server_prefill_s", "float", "--otlp-port: the server's span's prefill time, seconds"),
    Column("server_ttft_s", "float", "--otlp-port: the server's span's time to first token, seconds"),
    Column("server_e2e_s", "float", "--otlp-port: the server's span's end-to-end time, seconds"),
    Column(
        "resent",
        "int",
        "1 when the request was sent twice: its first send, on a kept connection, was closed "
        "unanswered (the server may have read it: count it among the server's receipts)",
    ),
    Column("resent_error", "text", "a resent request's first attempt's error"),
)
NAMES: list[str] = [c.name for c in COLUMNS]
TEXT = [c.name for c in COLUMNS if c.kind in ("text", "gaps")]
NUMERIC = [c.name for c in COLUMNS if c.kind in ("float", "int")]
BOOLEAN = [c.name for c in COLUMNS if c.kind == "bool"]
# what a report cannot do without
REQUIRED = ["start_time", "success", "ttft_s", "e2e_s", "output_tokens"]
# files written before the cancelled column: the error said so
LEGACY_CANCELLED_PREFIX = "cancelled:"


def _num(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def _gaps(itl: list[float]) -> str:
    """Space-separated seconds at 1 µs resolution, formatted in one call."""
    return ("%.6f " * len(itl) % tuple(itl))[:-1] if itl else ""


def _text(value: str) -> str:
    """A CSV field for text that may hold a delimiter or a quote (quoted as the csv module does)."""
    if "," in value or '"' in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def _bool(value: bool) -> str:
    return "true" if value else "false"


def encode(rec: RequestRecord, endpoint: str, worker: str) -> list[str]:
    """A row, in the order of COLUMNS, each field ready to join with commas (see ``csv_line``).

    Floats keep full precision (repr); ITL gaps are rounded to 1 µs. Numbers and our own
    words need no quoting; text from the server or an error is quoted when it needs it.
    """
    return [
        _text(rec.request_id),
        _num(rec.start_time),
        endpoint,
        str(rec.status) if rec.status else "",
        _bool(rec.success),
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
        _bool(rec.cancelled),
        _num(rec.scheduled_time),
        _num(rec.schedule_lag),
        _num(rec.queue),
        rec.stage,
        _bool(rec.warm_cache),
        rec.level,
        _num(rec.trace_index),
        _num(rec.ideal_cached_tokens),
        _text(rec.host),
        _num(rec.repeat),
        _text(rec.model),
        _num(rec.answer_ttft),
        _num(rec.reasoning_tokens),
        _num(rec.image_count),
        rec.trace_id,
        # the server's timings: joined from its spans at the end of the run (llmclient/spans.py)
        "",
        "",
        "",
        "",
        "1" if rec.resent else "0",
        _text(" ".join(rec.resent_error.split())),
    ]


def csv_line(fields: list[str]) -> str:
    """One line of the CSV. The csv module's writer scans every character of the long ITL
    field (about 30 µs a row, measured); the fields are already quoted where needed."""
    return ",".join(fields) + "\n"


HEADER = csv_line(NAMES)


def _decode(kind: Kind, text: str) -> object:
    if kind == "text":
        return text
    if kind == "gaps":
        return [float(x) for x in text.split()]
    if kind == "bool":
        return text.strip().lower() == "true"
    if not text:
        return None
    return int(float(text)) if kind == "int" else float(text)


def decode(row: Mapping[str, str]) -> dict[str, object]:
    """A row as read back (a dict of strings, or a shipped row zipped with NAMES), typed.

    Columns the row lacks are None (a bool: False); a file from before the ``cancelled``
    column says cancellation in its error text.
    """
    out: dict[str, object] = {}
    for column in COLUMNS:
        text = row.get(column.name)
        out[column.name] = _decode(column.kind, text) if text is not None else None
    if row.get("cancelled") is None:
        out["cancelled"] = is_legacy_cancelled(row.get("error") or "")
    return out


def from_fields(fields: list[str]) -> dict[str, object]:
    """``decode`` for a row as ``encode`` made it (the rows workers ship; text fields stay CSV-quoted)."""
    return decode(dict(zip(NAMES, fields, strict=False)))


def number(row: Mapping[str, object], name: str) -> float | None:
    """A decoded row's numeric field as a float, or None when the row has none."""
    value = row.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def is_legacy_cancelled(error: str) -> bool:
    return error.startswith(LEGACY_CANCELLED_PREFIX)
