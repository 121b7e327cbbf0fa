"""Both transports measure by the same rules: the suite's socket client and the openai SDK, against one
canned server. Reasoning chunks are text, an in-stream error frame fails the request, and so does a
stream that ends without ``[DONE]``, with the same words in the ``error`` column."""

from __future__ import annotations

import socket
import time

import gevent
import pytest

from llmclient.http import Target
from llmclient.measure import RequestRecord
from llmclient.pacer import Pacer
from llmclient.reactor import StreamReactor
from llmclient.stream import CHAT, build_body
from llmclient.transports import OpenAISDKTransport, SocketTransport
from tests.unit.llmclient.scripted import END, chat_chunk, frame, usage_chunk

SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
)
REASONING = (
    frame(chat_chunk(role="assistant", content=""))
    + frame(chat_chunk("thinking", key="reasoning"))
    + frame(chat_chunk("more", key="reasoning_content"))
    + frame(chat_chunk("Hello"))
    + frame(chat_chunk("!", finish="stop"), usage_chunk(7, 4, cached=0), b"[DONE]")
    + END
)
ERROR_FRAME = (
    frame(chat_chunk("Hel"))
    + frame(b'{"error":{"message":"engine died","type":"InternalServerError","code":500}}', b"[DONE]")
    + END
)
NO_DONE = frame(chat_chunk("Hel")) + frame(chat_chunk("lo", finish="stop"), usage_chunk(7, 2)) + END


class CannedServer:
    """Answers every request on a loopback port with the same bytes, then closes."""

    def __init__(self, body: bytes) -> None:
        self.response = SSE_HEAD + body
        # (unix time, body bytes) of each whole request read
        self.received: list[tuple[float, int]] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._loop = gevent.spawn(self._serve)

    def _serve(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            gevent.spawn(self._answer, conn)

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                more = conn.recv(65536)
                # a connection opened ahead and closed unused
                if not more:
                    return
                data += more
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(
                next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            )
            while len(body) < length:
                body += conn.recv(65536)
            self.received.append((time.time(), len(body)))
            conn.sendall(self.response)

    def close(self) -> None:
        self._loop.kill()
        self.sock.close()


def both(body: bytes) -> dict[str, RequestRecord]:
    server = CannedServer(body)
    try:
        request = build_body(CHAT, "m", "hi", 16)
        records = {}
        for name, transport in (
            ("socket", SocketTransport(Target.parse(server.url), {"Content-Type": "application/json"})),
            ("openai", OpenAISDKTransport(server.url, None, 10.0)),
        ):
            records[name] = transport.send(CHAT, request, RequestRecord(), True)
            transport.close()
        return records
    finally:
        server.close()


def test_reasoning_counts_as_text_and_usage_gives_the_counts():
    for name, rec in both(REASONING).items():
        assert rec.success, (name, rec.error)
        # reasoning, reasoning, Hello, !
        assert rec.ttft_s is not None and len(rec.itl_s) == 3, name
        assert (rec.prompt_tokens, rec.output_tokens, rec.cached_tokens) == (7, 4, 0), name
        assert rec.usage_source == "server" and rec.finish_reason == "stop" and rec.text == "Hello!", name
        assert rec.request_id == "c-1" and rec.status == 200, name


def test_an_error_frame_fails_the_request_in_both():
    records = both(ERROR_FRAME)
    for name, rec in records.items():
        assert not rec.success and rec.error == "server error in stream: engine died (code 500)", (name, rec.error)
        # what came before the error is kept
        assert rec.ttft_s is not None, name


def test_a_stream_without_done_fails_in_both():
    for name, rec in both(NO_DONE).items():
        assert not rec.success and rec.error == "stream ended without [DONE]", (name, rec.error)
        assert rec.output_tokens == 2, name


@pytest.mark.parametrize("status", [429, 500])
def test_an_error_status_reads_the_same_in_both(status):
    server = CannedServer(b"")
    server.response = (
        b"HTTP/1.1 %d Oops\r\ncontent-type: application/json\r\ncontent-length: 29\r\nconnection: close\r\n\r\n"
        % status
        + b'{"error":{"message":"nope!"}}'
    )
    try:
        request = build_body(CHAT, "m", "hi", 16)
        for transport in (SocketTransport(Target.parse(server.url), {}), OpenAISDKTransport(server.url, None, 10.0)):
            rec = transport.send(CHAT, request, RequestRecord(), False)
            transport.close()
            assert rec.status == status and rec.error == f"HTTP {status} Oops: nope!", rec.error
    finally:
        server.close()


def test_a_paced_request_goes_out_at_its_due_time_whole_even_when_the_socket_takes_it_in_parts():
    server = CannedServer(REASONING)
    pacer = Pacer()
    try:
        # 8 MB: more than a socket takes at once
        for prompt in ("hi", "x " * 4_000_000):
            transport = SocketTransport(Target.parse(server.url), {}, reactor=StreamReactor(pacer), pacer=pacer)
            due = time.time() + 0.05
            rec = transport.send(CHAT, build_body(CHAT, "m", prompt, 16), RequestRecord(scheduled_time=due), True)
            transport.close()
            assert rec.success, rec.error
            # the clocks start at the due time, not before
            assert due <= rec.start_time <= server.received[-1][0]
            assert server.received[-1][1] > len(prompt)
    finally:
        server.close()


def test_a_paced_request_stopped_before_its_due_time_is_never_sent_nor_started():
    server = CannedServer(REASONING)
    pacer = Pacer()
    transport = SocketTransport(Target.parse(server.url), {}, pacer=pacer)
    rec = RequestRecord(scheduled_time=time.time() + 0.2)
    try:
        sender = gevent.spawn(transport.send, CHAT, build_body(CHAT, "m", "hi", 16), rec, True)
        gevent.sleep(0.05)
        sender.kill()
        gevent.sleep(0.3)
        pacer.poll()
        assert rec.start_time == 0 and not rec.cancelled and server.received == []
    finally:
        transport.close()
        server.close()
