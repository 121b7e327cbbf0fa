"""The per-request row: one frozen class, ``Row``, whose fields are the CSV's columns.

Each field carries its column's kind and meaning; the column list (``COLUMNS``), the encoding of a row
into CSV fields (``Row.fields``), the decoding of a CSV line or of a row a worker shipped
(``Row.from_mapping``, ``Row.from_fields``) and the docs' reference table all come from it. The request
log writes rows, the master decodes the rows its workers ship, the live observers read rows, and the
reports type the CSV's columns by it. Imports no Locust.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from llmclient.measure import RequestRecord

Kind = Literal["text", "float", "int", "bool", "gaps"]
# a field's value when the row lacks its column
_EMPTY: dict[str, Any] = {"text": "", "float": None, "int": None, "bool": False, "gaps": ()}


def column(kind: Kind, meaning: str) -> Any:
    """A field of ``Row``: a column of the per-request CSV."""
    return field(default=_EMPTY[kind], metadata={"kind": kind, "meaning": meaning})


@dataclass(frozen=True, slots=True)
class Row:
    """One finished request, as the per-request CSV holds it (its fields in the CSV's order)."""

    request_id: str = column("text", "the server's response id")
    start_time: float | None = column("float", "unix seconds, when the request was sent")
    endpoint: str = column("text", "chat or completions")
    status: int | None = column("int", "the HTTP status")
    success: bool = column("bool", "true/false")
    error: str = column("text", "the failure reason (for a cancelled request, why it was cut off)")
    ttft_s: float | None = column("float", "time to first token, seconds")
    tpot_s: float | None = column("float", "time per output token, seconds")
    e2e_s: float | None = column("float", "end-to-end latency, seconds")
    decode_tps: float | None = column("float", "1 / TPOT")
    prompt_tokens: int | None = column("int", "from the server's usage")
    cached_tokens: int | None = column("int", "from the server's usage (prompt_tokens_details)")
    output_tokens: int | None = column("int", "from the server's usage")
    usage_source: str = column("text", "server, or chunks when the server sent no usage")
    finish_reason: str = column("text", "stop, length, ...")
    # the record's list, not copied (the record is done with it)
    itl_s: Sequence[float] = column("gaps", "the inter-token gaps, space-separated seconds (1 µs resolution)")
    worker: str = column("text", "local, or the Locust worker's id")
    cancelled: bool = column("bool", "true when the end of the test cut the request off (not a failure)")
    scheduled_time: float | None = column("float", "open loop: unix seconds when the request was due")
    schedule_lag_s: float | None = column(
        "float", "open loop: how much later than due it was sent (less queue_s), seconds"
    )
    queue_s: float | None = column("float", "open loop: then how long it waited for --max-concurrency, seconds")
    stage: str = column("text", "open loop: its --stages number")
    warm_cache: bool = column("bool", "the prompt's unique part was already cached: a cache warm from an earlier run")
    level: str = column("text", "sweep or capacity search: its level number (PREFIX_levels.csv says what it was)")
    trace_index: int | None = column("int", "trace replay: the request's row in the trace (0-based, in time order)")
    ideal_cached_tokens: int | None = column(
        "int",
        "trace replay: the tokens an unbounded prefix cache would hold for it; a session's later turn: the "
        "history's, its earlier prompt's whole blocks (--kv-block-size)",
    )
    host: str = column("text", "the host (of -H's) the request went to")
    repeat: int | None = column("int", "--repeat: which repetition of the workload or of its level (1-based)")
    model: str = column("text", "the model (or LoRA adapter) the request asked for")
    answer_ttft_s: float | None = column(
        "float", "time to the first answer token (not reasoning), seconds: a reasoning model's wait"
    )
    reasoning_tokens: int | None = column(
        "int", "reasoning tokens: the server's usage where it says, else the reasoning chunks"
    )
    image_count: int | None = column("int", "--images: the images in the request's prompt")
    trace_id: str = column("text", "--trace-context: the W3C trace id sent in the request's traceparent header")
    # the server's timings: joined from its spans at the end of the run (llmclient/spans.py)
    server_queue_s: float | None = column("float", "--otlp-port: the server's span's time in queue, seconds")
    server_prefill_s: float | None = column("float", "--otlp-port: the server's span's prefill time, seconds")
    server_ttft_s: float | None = column("float", "--otlp-port: the server's span's time to first token, seconds")
    server_e2e_s: float | None = column("float", "--otlp-port: the server's span's end-to-end time, seconds")
    resent: int | None = column(
        "int",
        "1 when the request was sent twice: its first send, on a kept connection, was closed unanswered (the "
        "server may have read it: count it among the server's receipts)",
    )
    resent_error: str = column("text", "a resent request's first attempt's error")
    session_id: str = column("text", "sessions: the session's id (unique in the run)")
    turn: int | None = column("int", "sessions: the request's turn in its session (1-based)")
    last_turn: bool = column("bool", "sessions: true on a session's last turn (a session counted as done)")

    @classmethod
    def of(cls, rec: RequestRecord, endpoint: str, worker: str) -> Row:
        """The row of a request measured in this process (``endpoint``: its name; ``worker``: this process's)."""
        return cls(
            request_id=rec.request_id,
            start_time=rec.start_time,
            endpoint=endpoint,
            status=rec.status or None,
            success=rec.success,
            error=" ".join(rec.error.split()),
            ttft_s=rec.ttft_s,
            tpot_s=rec.tpot_s,
            e2e_s=rec.e2e_s,
            decode_tps=rec.decode_tps,
            prompt_tokens=rec.prompt_tokens,
            cached_tokens=rec.cached_tokens,
            output_tokens=rec.output_tokens,
            usage_source=rec.usage_source,
            finish_reason=rec.finish_reason,
            itl_s=rec.itl_s,
            worker=worker,
            cancelled=rec.cancelled,
            scheduled_time=rec.scheduled_time,
            schedule_lag_s=rec.schedule_lag_s,
            queue_s=rec.queue_s,
            stage=rec.stage,
            warm_cache=rec.warm_cache,
            level=rec.level,
            trace_index=rec.trace_index,
            ideal_cached_tokens=rec.ideal_cached_tokens,
            host=rec.host,
            repeat=rec.repeat,
            model=rec.model,
            answer_ttft_s=rec.answer_ttft_s,
            reasoning_tokens=rec.reasoning_tokens,
            image_count=rec.image_count,
            trace_id=rec.trace_id,
            resent=int(rec.resent),
            resent_error=" ".join(rec.resent_error.split()),
            session_id=rec.session_id,
            turn=rec.turn or None,
            last_turn=rec.last_turn,
        )

    def fields(self) -> list[str]:
        """The row's CSV fields, in column order, each ready to join with commas (``csv_line``).

        Floats keep full precision (repr); ITL gaps are rounded to 1 µs; text is quoted where it needs it.
        """
        return [encode(value) for encode, value in zip(_ENCODERS, _VALUES(self), strict=True)]

    @classmethod
    def from_mapping(cls, row: Mapping[str, str]) -> Row:
        """A row read back from the CSV (its column names to their text). Columns the row lacks are empty;
        a file from before the ``cancelled`` column says cancellation in its error text."""
        values = {c.name: _DECODERS[c.kind](text) for c in COLUMNS if (text := row.get(c.name)) is not None}
        if row.get("cancelled") is None:
            values["cancelled"] = is_legacy_cancelled(row.get("error") or "")
        return cls(**values)

    @classmethod
    def from_fields(cls, shipped: list[str]) -> Row:
        """A row as ``fields`` made it (the rows workers ship; a shorter one, from an older worker, lacks
        the last columns)."""
        return cls(*[decode(text) for decode, text in zip(_SHIPPED_DECODERS, shipped, strict=False)])

    @property
    def end_time(self) -> float:
        """Unix seconds when it ended (now, when it has no start or no E2E)."""
        if not self.start_time or self.e2e_s is None:
            return time.time()
        return self.start_time + self.e2e_s


@dataclass(frozen=True, slots=True)
class Column:
    """A column of the per-request CSV: a field of ``Row``."""

    name: str
    kind: Kind
    meaning: str


COLUMNS: tuple[Column, ...] = tuple(Column(f.name, f.metadata["kind"], f.metadata["meaning"]) for f in fields(Row))
NAMES: list[str] = [c.name for c in COLUMNS]
_LAST_TURN = NAMES.index("last_turn")


def ends_session(shipped: Sequence[str]) -> bool:
    """A shipped row (its CSV fields) is a session's last turn (an older worker's rows end none)."""
    return len(shipped) > _LAST_TURN and shipped[_LAST_TURN] == "true"


TEXT = [c.name for c in COLUMNS if c.kind in ("text", "gaps")]
NUMERIC = [c.name for c in COLUMNS if c.kind in ("float", "int")]
BOOLEAN = [c.name for c in COLUMNS if c.kind == "bool"]
# what a report cannot do without
REQUIRED = ["start_time", "success", "ttft_s", "e2e_s", "output_tokens"]
# files written before the cancelled column: the error said so
LEGACY_CANCELLED_PREFIX = "cancelled:"


def _number(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def _gaps(itl: Sequence[float]) -> str:
    """Space-separated seconds at 1 µs resolution, formatted in one call."""
    return ("%.6f " * len(itl) % tuple(itl))[:-1] if itl else ""


def _text(value: str) -> str:
    """A CSV field for text that may hold a delimiter or a quote (quoted as the csv module does)."""
    if "," in value or '"' in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def _unquote(field: str) -> str:
    """A field as ``_text`` wrote it, as the csv module reads it back."""
    return field[1:-1].replace('""', '"') if field[:1] == '"' else field


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _decode_number(kind: Kind) -> Callable[[str], float | int | None]:
    def decode(text: str) -> float | int | None:
        if not text:
            return None
        return int(float(text)) if kind == "int" else float(text)

    return decode


_ENCODE: dict[str, Callable[[Any], str]] = {
    "text": _text,
    "float": _number,
    "int": _number,
    "bool": _bool,
    "gaps": _gaps,
}
_ENCODERS: tuple[Callable[[Any], str], ...] = tuple(_ENCODE[c.kind] for c in COLUMNS)
# a row's values in column order, in one call
_VALUES = operator.attrgetter(*NAMES)
_DECODERS: dict[str, Callable[[str], Any]] = {
    "text": str,
    "float": _decode_number("float"),
    "int": _decode_number("int"),
    "bool": lambda text: text.strip().lower() == "true",
    "gaps": lambda text: tuple(float(x) for x in text.split()),
}
# a shipped row's text is as ``_text`` quoted it
_SHIPPED_DECODERS: tuple[Callable[[str], Any], ...] = tuple(
    _unquote if c.kind == "text" else _DECODERS[c.kind] for c in COLUMNS
)


def csv_line(fields: list[str]) -> str:
    """One line of the CSV. The csv module's writer scans every character of the long ITL
    field (about 30 µs a row, measured); the fields are already quoted where needed."""
    return ",".join(fields) + "\n"


HEADER = csv_line(NAMES)


def is_legacy_cancelled(error: str) -> bool:
    return error.startswith(LEGACY_CANCELLED_PREFIX)
