"""One greenlet reads every streaming socket of the process, each response from head to end.

With a greenlet per stream, each chunk costs its own gevent wake-up: two
``recv`` calls, two switches and an event-loop round. vLLM sends a token to
every running stream in the same decode step, so chunks arrive in bursts of
one per stream. The reactor waits on one ``epoll`` set and, when it wakes,
reads every ready socket in one pass: one wake-up per burst. Each read is
dated by the kernel's receive timestamp when the socket has one (see stamps.py),
else by the clock as the read returns. Users send their requests in their own
greenlets, then hand the socket over at once: the reactor reads the head and the
body (``response.ResponseReader``) and the user waits for the end on an
``AsyncResult``. Plain-TCP connections only; TLS streams are read the ordinary way.
A pass over hundreds of ready streams takes milliseconds: between reads it fires the
open loop's sends that fall due meanwhile (``pacer.py``).
"""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Callable

import gevent
from gevent.event import AsyncResult, Event
from gevent.monkey import get_original
from gevent.socket import wait_read

from llmclient import stamps
from llmclient.errors import ProtocolError, TransportError
from llmclient.http import Connection, broken_message, stalled_message
from llmclient.pacer import Pacer
from llmclient.response import ResponseReader, timed_out_message


class _Stream:
    __slots__ = ("body", "clock", "conn", "last", "result", "sock", "stamped")

    def __init__(self, conn: Connection, sock: socket.socket, body: ResponseReader, clock: Callable[[], float]) -> None:
        self.conn = conn
        self.sock = sock
        self.stamped = conn.stamped
        self.body = body
        self.clock = clock
        self.result: AsyncResult[str] = AsyncResult()
        self.last = clock()


class StreamReactor:
    def __init__(self, pacer: Pacer | None = None) -> None:
        # gevent removes select.epoll when it patches; the reactor only ever polls it with a
        # zero timeout after gevent reported its fd readable, so the original never blocks
        self._epoll = get_original("select", "epoll")()
        self._streams: dict[int, _Stream] = {}
        self._wake = Event()
        self._loop: gevent.Greenlet | None = None
        # fires the sends that fall due during a pass
        self.pacer = pacer

    @staticmethod
    def accepts(conn: Connection) -> bool:
        return conn.os_socket() is not None

    def read_response(
        self, conn: Connection, body: ResponseReader, clock: Callable[[], float], start: float, deadline_s: float | None
    ) -> str:
        """Feed what arrives on ``conn`` to ``body`` until it is complete, as ``stream.read_response``
        does, the reading done by the reactor; returns an error or ""."""
        sock = conn.os_socket()
        assert sock is not None, "the reactor reads plain-TCP sockets only (see accepts)"
        stream = _Stream(conn, sock, body, clock)
        fd = sock.fileno()
        self._streams[fd] = stream
        self._epoll.register(fd, select.EPOLLIN)
        self._ensure_loop()
        # A user sends its request when its previous stream ends, and the streams of a batch end
        # together: while the others send theirs, the reactor's greenlet waits its turn. Read what
        # is ready now, so tokens of the streams that started first are not left to pile up.
        self._read_ready()
        stall = conn.read_timeout
        try:
            while True:
                now = clock()
                waits = [stall - (now - stream.last)]
                if deadline_s is not None:
                    waits.append(deadline_s - (now - start))
                try:
                    return str(stream.result.get(timeout=max(min(waits), 0.0)))
                except gevent.Timeout:
                    now = clock()
                    if deadline_s is not None and now - start >= deadline_s:
                        conn.close()
                        return timed_out_message(deadline_s)
                    if now - stream.last >= stall:
                        conn.close()
                        return stalled_message(stall)
        finally:
            self._forget(fd, stream)

    def _forget(self, fd: int, stream: _Stream) -> None:
        if self._streams.get(fd) is stream:
            del self._streams[fd]
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(fd)

    def _ensure_loop(self) -> None:
        if self._loop is None or self._loop.dead:
            self._loop = gevent.spawn(self._run)
        self._wake.set()

    def _run(self) -> None:
        epfd = self._epoll.fileno()
        while True:
            if not self._streams:
                self._wake.clear()
                self._wake.wait()
                continue
            try:
                wait_read(epfd, timeout=1.0)
            except TimeoutError:
                continue
            # the epoll set changed under us; poll again
            except OSError:
                pass
            self._read_ready()

    def _read_ready(self) -> None:
        """One pass over the sockets with data waiting; never blocks. Before each read, the sends
        that have fallen due go out."""
        streams = self._streams
        poll = self.pacer.poll if self.pacer is not None else None
        for fd, _ in self._epoll.poll(0):
            if poll is not None:
                poll()
            stream = streams.get(fd)
            if stream is not None:
                self._readable(fd, stream)

    def _readable(self, fd: int, stream: _Stream) -> None:
        try:
            data, arrived = stamps.read(stream.sock, stream.stamped)
        except BlockingIOError:
            return
        except OSError as exc:
            stream.conn.peer_closed = True
            self._done(fd, stream, broken_message(exc), close=True)
            return
        t = stamps.arrival(stream.clock, arrived)
        if not data:
            stream.conn.peer_closed = True
            self._done(fd, stream, stream.body.eof_error(), close=True)
            return
        stream.conn.answered = True
        stream.last = t
        try:
            complete = stream.body.feed(data, t)
        except ProtocolError as exc:
            self._done(fd, stream, f"bad stream framing: {exc}", close=True)
            return
        # a garbled response head
        except TransportError as exc:
            self._done(fd, stream, str(exc), close=True)
            return
        # a bug must not stop the reactor for every other stream
        except Exception as exc:
            self._done(fd, stream, f"client error: {exc!r}", close=True)
            return
        if complete:
            self._done(fd, stream, "", close=False)

    def _done(self, fd: int, stream: _Stream, error: str, close: bool) -> None:
        self._forget(fd, stream)
        if close:
            stream.conn.close()
        stream.result.set(error)
