"""A scripted server for unit tests: each read arrives at a set time on a fake clock."""

from __future__ import annotations

import json

from llmclient.http import Connection, Target


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedSocket:
    """Each ``recv`` returns the next scripted piece and moves the clock to its arrival time."""

    def __init__(self, clock: FakeClock, reads: list[tuple[float, bytes]]) -> None:
        self.clock = clock
        self.reads = list(reads)
        self.sent = b""
        self.closed = False

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def recv(self, _n: int) -> bytes:
        if not self.reads:
            return b""
        t, data = self.reads.pop(0)
        if isinstance(data, Exception):
            raise data
        self.clock.now = t
        return data

    def close(self) -> None:
        self.closed = True


def scripted_connection(clock: FakeClock, reads: list[tuple[float, bytes]]) -> tuple[Connection, ScriptedSocket]:
    conn = Connection(Target.parse("http://127.0.0.1:9"))
    sock = ScriptedSocket(clock, reads)

    # the scripted socket is the connection the first send opens
    def connect() -> ScriptedSocket:
        conn._sock = sock  # type: ignore[assignment]
        return sock

    conn._connect = connect  # type: ignore[method-assign,assignment]
    return conn, sock


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def frame(*events: bytes) -> bytes:
    """One HTTP chunk carrying the given SSE data payloads."""
    body = b"".join(b"data: " + e + b"\n\n" for e in events)
    return b"%x\r\n%b\r\n" % (len(body), body)


END = b"0\r\n\r\n"


def chat_chunk(
    content: str | None = None,
    role: str | None = None,
    finish: str | None = None,
    rid: str = "c-1",
    key: str = "content",
) -> bytes:
    delta: dict = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta[key] = content
    obj = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return json.dumps(obj, separators=(",", ":")).encode()


def usage_chunk(prompt: int, completion: int, cached: int | None = None, rid: str = "c-1") -> bytes:
    usage: dict = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return json.dumps(
        {"id": rid, "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": usage}
    ).encode()
