"""Fault injection: each kind at a chosen rate, for tests and for rehearsing failures.

``--fault KIND=RATE`` (repeatable). Kinds:
  http_500, http_429   an error status with an OpenAI-style JSON body
  refuse               close the connection before any response byte
  reset                reset the connection in the middle of the stream
  malformed            a chunk of broken JSON in the middle of the stream
  error_frame          an ``{"error": ...}`` frame in the middle of the stream
  no_done              end the stream without ``[DONE]``
  empty                a stream with no token at all
  stall                stop sending in the middle of the stream (the client's timeout must fire)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

KINDS = ("http_500", "http_429", "refuse", "reset", "malformed", "error_frame", "no_done", "empty", "stall")


@dataclass
class Fault:
    kind: str
    # where mid-stream faults strike (0 = with the first token)
    at_token: int = 1

    def before_headers(self, conn: Any) -> bool:
        """Handle faults that strike before the response starts. True when handled."""
        if self.kind == "http_500":
            conn.respond_json(
                500,
                {
                    "error": {
                        "message": "injected fault: internal error",
                        "type": "InternalServerError",
                        "param": None,
                        "code": 500,
                    }
                },
            )
        elif self.kind == "http_429":
            conn.respond_json(
                429,
                {
                    "error": {
                        "message": "injected fault: too many requests",
                        "type": "RateLimitError",
                        "param": None,
                        "code": 429,
                    }
                },
            )
        elif self.kind == "refuse":
            conn.abort()
        else:
            return False
        return True

    def mid_stream(self, sink: Any, seq: Any, index: int, out: bytes) -> bool:
        """Called before each token chunk is sent. True when the fault took over."""
        conn = sink.conn
        kind = self.kind
        if kind == "empty":
            seq.cancelled = True
            seq.generated = 0
            sink.finish_without_tokens(seq)
            return True
        if kind == "no_done" and seq.finish_reason:
            conn.send_chunk(out)
            conn.end_stream()
            seq.cancelled = True
            sink.abort(seq, "fault:no_done")
            return True
        if index != self.at_token:
            return False
        if kind == "reset":
            conn.send_chunk(out)
            conn.abort(reset=True)
            seq.cancelled = True
            sink.abort(seq, "fault:reset")
            return True
        if kind == "malformed":
            conn.send_chunk(out + b'data: {"id":"' + sink.rid.encode() + b'","choices":[{"delta":{"content":"x\n\n')
            # then carry on: the client must still fail the request
            return False
        if kind == "error_frame":
            conn.send_chunk(
                out + b'data: {"error": {"message": "injected fault: engine error", "type": '
                b'"InternalServerError", "code": 500}}\n\ndata: [DONE]\n\n'
            )
            conn.end_stream()
            seq.cancelled = True
            sink.abort(seq, "fault:error_frame")
            return True
        if kind == "stall":
            conn.send_chunk(out)
            # never another byte; the connection stays open
            seq.cancelled = True
            sink.abort(seq, "fault:stall")
            return True
        return False


class FaultPlan:
    def __init__(self, rates: dict[str, float], seed: int = 0, at_token: int = 1) -> None:
        for kind, rate in rates.items():
            if kind not in KINDS:
                raise ValueError(f"unknown fault {kind!r}; known: {', '.join(KINDS)}")
            if not 0 <= rate <= 1:
                raise ValueError(f"fault rate for {kind} must be between 0 and 1, got {rate}")
        if sum(rates.values()) > 1:
            raise ValueError("fault rates add up to more than 1")
        self.rates = rates
        self.at_token = at_token
        self._rng = random.Random(seed + 7)
        self.injected: dict[str, int] = {}

    def pick(self) -> Fault | None:
        if not self.rates:
            return None
        u = self._rng.random()
        acc = 0.0
        for kind, rate in self.rates.items():
            acc += rate
            if u < acc:
                self.injected[kind] = self.injected.get(kind, 0) + 1
                return Fault(kind, self.at_token)
        return None

    @staticmethod
    def parse(specs: list[str], seed: int = 0, at_token: int = 1) -> FaultPlan:
        rates: dict[str, float] = {}
        for spec in specs:
            kind, sep, rate = spec.partition("=")
            if not sep:
                raise ValueError(f"--fault takes KIND=RATE, got {spec!r}")
            try:
                rates[kind.strip()] = float(rate)
            except ValueError:
                raise ValueError(f"--fault rate must be a number, got {rate!r}") from None
        return FaultPlan(rates, seed, at_token)
