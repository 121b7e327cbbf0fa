"""Timestamped traces to replay: reading them, checking them, and what their prefix sharing allows.

Formats (``--trace-format``, guessed from the file when absent):

- ``mooncake``: JSON lines ``{"timestamp": ms, "input_length": n, "output_length": m,
  "hash_ids": [...]}``; each hash id is one block of ``--trace-block-tokens`` tokens (512 in
  Mooncake's traces), equal ids identical blocks; ``session_id`` (or ``conversation_id``) when present;
- ``azure``: a CSV with a timestamp column (``TIMESTAMP``, a date and time, or seconds) and
  token counts (``ContextTokens``, ``GeneratedTokens``), as Azure's LLM inference traces;
- ``requests``: this suite's own ``PREFIX_requests.csv`` (replay a run): ``scheduled_time`` or
  ``start_time``, ``prompt_tokens``, ``output_tokens``; rows without a prompt length (requests
  that failed before the server counted them) are left out.

Sessions: a request of a session (and without hash ids of its own) begins with the previous request
of its session, block for block, as a conversation's next turn re-sends its history: its hash ids
are made so (ids below zero), and the cache and the ideal see the reuse. (The assistant's reply is
not part of it: its tokens cannot be re-created exactly.)

A bad trace (unsorted or negative timestamps, a missing field, a length over the model's
context, hash ids that contradict ``input_length``) raises ``TraceError``: one line naming the row.

``ideal_cached_tokens``: from the hash ids alone, the tokens of each request an unbounded prefix
cache would hold when it arrives (the leading blocks an earlier request of the trace had, whole or
in part, never the request's last token): the ideal the server's measured hits are set against.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from scheduler.arrivals import Arrival
from scheduler.errors import ParameterError

FORMATS = ("mooncake", "azure", "requests")
AZURE_TIME = ("TIMESTAMP", "timestamp", "Timestamp", "time")
AZURE_INPUT = ("ContextTokens", "context_tokens", "input_tokens", "input_length")
AZURE_OUTPUT = ("GeneratedTokens", "generated_tokens", "output_tokens", "output_length")
SESSION = ("session_id", "conversation_id", "SessionId", "ConversationId")


class TraceError(ParameterError):
    """A trace that cannot be replayed: one line, naming the file and the row."""

    def __init__(self, rest: str, parameter: str = "trace") -> None:
        super().__init__(parameter, rest)


@dataclass(frozen=True, slots=True)
class TraceRequest:
    # 0-based, in the trace's order
    index: int
    # seconds after the trace's first request
    time_s: float
    input_length: int
    output_length: int
    # one per block; empty when the format has none
    hash_ids: tuple[int, ...] = ()
    session: str = ""
    # the file and row, for messages
    where: str = ""


@dataclass(frozen=True)
class Trace:
    path: str
    format: str
    requests: tuple[TraceRequest, ...]
    block_tokens: int

    @property
    def span_s(self) -> float:
        return self.requests[-1].time_s if self.requests else 0.0

    def rate(self, speed: float = 1.0) -> float:
        """Requests per second at this speed (over the span between the first and last arrival)."""
        n = len(self.requests)
        return (n - 1) * speed / self.span_s if n > 1 and self.span_s > 0 else math.nan


def guess_format(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.read(4096)
    text = head.lstrip()
    if text.startswith("{") or text.startswith("["):
        return "mooncake"
    first = text.splitlines()[0] if text else ""
    columns = [c.strip().strip('"') for c in first.split(",")]
    if "prompt_tokens" in columns and ("start_time" in columns or "scheduled_time" in columns):
        return "requests"
    if any(c in columns for c in AZURE_INPUT):
        return "azure"
    raise TraceError(
        f" {path}: cannot tell its format (expected Mooncake JSON lines, an Azure-style CSV or a "
        "PREFIX_requests.csv); give {trace_format}"
    )


def load_trace(path: str, fmt: str = "", block_tokens: int = 512) -> Trace:
    """Read and check a trace (raises TraceError)."""
    if not os.path.isfile(path):
        raise TraceError(f" {path}: no such file")
    try:
        fmt = fmt or guess_format(path)
        reader = {"mooncake": _mooncake, "azure": _azure, "requests": _requests}.get(fmt)
        if reader is None:
            raise TraceError(f" must be one of {', '.join(FORMATS)}, got {fmt!r}", "trace_format")
        raw = list(reader(path, block_tokens))
    except OSError as exc:
        raise TraceError(f" {path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise TraceError(f" {path}: not UTF-8 text") from None
    if not raw:
        raise TraceError(f" {path}: no requests in it")
    requests = []
    t0 = raw[0][1]
    previous = -math.inf
    for index, (where, t, n_in, n_out, ids, session) in enumerate(raw):
        if t < 0:
            raise TraceError(f" {path}: {where}: negative timestamp {t:g}")
        if t < previous:
            raise TraceError(
                f" {path}: {where}: timestamp {t:g} is earlier than the row before ({previous:g}); "
                "a trace must be sorted by time"
            )
        previous = t
        requests.append(TraceRequest(index, t - t0, n_in, n_out, ids, session, where))
    return Trace(path, fmt, tuple(with_sessions(requests, block_tokens)), block_tokens)


def with_sessions(requests: list[TraceRequest], block_tokens: int) -> list[TraceRequest]:
    """Requests of a session without hash ids get ids that begin with the whole blocks of the session's
    previous request (its history); every other block is new (a negative id of its own)."""
    last: dict[str, TraceRequest] = {}
    fresh = -1
    out = []
    for r in requests:
        if r.session and not r.hash_ids:
            before = last.get(r.session)
            kept = list(before.hash_ids[: min(before.input_length, r.input_length) // block_tokens]) if before else []
            blocks = math.ceil(r.input_length / block_tokens)
            new = list(range(fresh, fresh - (blocks - len(kept)), -1))
            fresh -= len(new)
            r = TraceRequest(r.index, r.time_s, r.input_length, r.output_length, tuple(kept + new), r.session, r.where)
        if r.session:
            last[r.session] = r
        out.append(r)
    return out


def check_lengths(trace: Trace, max_model_len: int | None, least_input: int = 1) -> None:
    """Every request fits the model's context and is longer than the prompt's fixed part (raises TraceError)."""
    for r in trace.requests:
        if max_model_len is not None and r.input_length + r.output_length > max_model_len:
            raise TraceError(
                f" {r.where}: input_length {r.input_length} + output_length {r.output_length} "
                f"exceeds the model's context of {max_model_len} tokens"
            )
        if r.input_length < least_input:
            raise TraceError(
                f" {r.where}: input_length {r.input_length} is shorter than the prompt's fixed "
                f"part ({least_input} tokens: the chat template or BOS, and a first word)"
            )


# where, time (s), input, output, hash ids, session
Raw = tuple[str, float, int, int, tuple[int, ...], str]


def _number(where: str, name: str, value: object) -> float | None:
    """A field as a number; None when it is not one (a missing field raises)."""
    if value is None or value == "":
        raise TraceError(f" {where}: missing {name}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _count(where: str, name: str, value: object, low: int = 1) -> int:
    number = _number(where, name, value)
    if number is None:
        raise TraceError(f" {where}: {name} is not a number ({value!r})")
    if not number.is_integer() or number < low:
        raise TraceError(f" {where}: {name} must be a whole number of at least {low}, got {value!r}")
    return int(number)


def _seconds(where: str, name: str, value: object, scale: float = 1.0) -> float:
    number = _number(where, name, value)
    if number is None:
        try:
            return datetime.fromisoformat(str(value).strip()).timestamp()
        except ValueError:
            raise TraceError(f" {where}: {name} is neither a number nor a date and time ({value!r})") from None
    if not math.isfinite(number):
        raise TraceError(f" {where}: {name} is not a finite number ({value!r})")
    return number * scale


def _mooncake(path: str, block_tokens: int) -> Iterator[Raw]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}: line {n}"
            try:
                rec = json.loads(line)
            except ValueError:
                raise TraceError(f" {where}: not valid JSON") from None
            if not isinstance(rec, dict):
                raise TraceError(f" {where}: expected a JSON object")
            t = _seconds(where, "timestamp", rec.get("timestamp"), 1e-3)
            n_in = _count(where, "input_length", rec.get("input_length"))
            n_out = _count(where, "output_length", rec.get("output_length"))
            ids = rec.get("hash_ids", [])
            if not isinstance(ids, list) or not all(isinstance(h, int) for h in ids):
                raise TraceError(f" {where}: hash_ids must be a list of whole numbers")
            if ids and len(ids) != math.ceil(n_in / block_tokens):
                raise TraceError(
                    f" {where}: {len(ids)} hash ids for input_length {n_in}, but blocks of {block_tokens} tokens "
                    f"make {math.ceil(n_in / block_tokens)} (see {{trace_block_tokens}})"
                )
            session = rec.get("session_id", rec.get("conversation_id", ""))
            yield where, t, n_in, n_out, tuple(ids), str(session) if session is not None else ""


def _pick(columns: list[str], names: tuple[str, ...]) -> str | None:
    return next((c for c in names if c in columns), None)


def _csv_rows(path: str) -> Iterator[tuple[str, dict[str, str], list[str]]]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        columns = list(reader.fieldnames or [])
        for n, row in enumerate(reader, 2):
            yield f"{path}: row {n}", row, columns


def _azure(path: str, _block_tokens: int) -> Iterator[Raw]:
    for where, row, columns in _csv_rows(path):
        time_col, in_col, out_col = (
            _pick(columns, AZURE_TIME),
            _pick(columns, AZURE_INPUT),
            _pick(columns, AZURE_OUTPUT),
        )
        if time_col is None or in_col is None or out_col is None:
            raise TraceError(
                f" {path}: an Azure-style trace needs columns {AZURE_TIME[0]}, {AZURE_INPUT[0]} "
                f"and {AZURE_OUTPUT[0]}; found {', '.join(columns)}"
            )
        session_col = _pick(columns, SESSION)
        yield (
            where,
            _seconds(where, time_col, row.get(time_col)),
            _count(where, in_col, row.get(in_col)),
            _count(where, out_col, row.get(out_col)),
            (),
            (row.get(session_col) or "").strip() if session_col else "",
        )


def _requests(path: str, _block_tokens: int) -> Iterator[Raw]:
    rows = []
    for where, row, columns in _csv_rows(path):
        if "prompt_tokens" not in columns or ("start_time" not in columns and "scheduled_time" not in columns):
            raise TraceError(f" {path}: a requests CSV needs start_time (or scheduled_time) and prompt_tokens")
        if not (row.get("prompt_tokens") or "").strip():
            # failed before the server counted its prompt: nothing to replay
            continue
        time_col = "scheduled_time" if (row.get("scheduled_time") or "").strip() else "start_time"
        out = row.get("output_tokens") or row.get("max_tokens")
        rows.append(
            (
                where,
                _seconds(where, time_col, row.get(time_col)),
                _count(where, "prompt_tokens", row.get("prompt_tokens")),
                _count(where, "output_tokens", out) if (out or "").strip() else 1,
                (),
                "",
            )
        )
    # a run's rows are written as requests end, not as they were sent
    rows.sort(key=lambda r: r[1])
    yield from rows


def arrivals(trace: Trace, speed: float = 1.0, total: int | None = None) -> Iterator[Arrival]:
    """The trace's arrivals at ``speed`` (2: twice as fast), the first at once; ``total`` cuts it (``-n``)."""
    for request in trace.requests[:total]:
        yield Arrival(request.index, request.time_s / speed, "")


def ideal_cached_tokens(trace: Trace) -> list[int]:
    """Per request, the tokens an unbounded prefix cache would hold for it: its leading blocks that an
    earlier request had (a partial block as far as both had it), never its last token; 0 without hash ids."""
    # (chain hash up to a block, its position) -> most tokens of it held
    seen: dict[tuple[int, int], int] = {}
    out = []
    b = trace.block_tokens
    for request in trace.requests:
        n = request.input_length
        cached = 0
        matching = True
        parent = 0
        for j, h in enumerate(request.hash_ids):
            parent = hash((parent, h))
            key = (parent, j)
            length = min(b, n - j * b)
            held = seen.get(key, 0)
            if matching:
                cached += min(held, length)
                # a block held only in part ends the match
                matching = held >= length
            seen[key] = max(held, length)
        out.append(min(cached, n - 1))
    return out


def hit_rate(cached: list[int], trace: Trace) -> float:
    total = sum(r.input_length for r in trace.requests)
    return sum(cached) / total if total else math.nan
