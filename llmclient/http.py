"""A small keep-alive HTTP/1.1 client that hands bytes over the moment they arrive.

Generic HTTP clients read streamed bodies in fixed-size blocks, which holds
SSE events back on slow streams. This one returns whatever one ``recv`` gave,
dated by its arrival (``stamps.py``), so the caller can time every read. Responses
are parsed by ``framing.py``. It uses the ``socket`` and ``ssl`` modules as they are
at call time: under Locust, gevent has patched them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import select
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from llmclient import stamps
from llmclient.errors import ProtocolError, TransportError
from llmclient.framing import Head, ResponseFraming

MAX_BODY = 16 * 1024 * 1024
# A kept connection idle this long is closed rather than reused: vLLM's server (uvicorn) closes idle
# keep-alive connections after 5 s (VLLM_HTTP_TIMEOUT_KEEP_ALIVE), proxies after 60 s or more.
KEEPALIVE_IDLE_S = 4.0


def stalled_message(seconds: float) -> str:
    return f"stalled: no data for {seconds:g} s"


def broken_message(exc: OSError) -> str:
    return f"connection broken mid-response: {os_reason(exc)}"


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    # "" or a path prefix without a trailing slash
    base_path: str
    # how an https connection verifies the server (None: against the system's CAs)
    tls: ssl.SSLContext | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, url: str, tls: ssl.SSLContext | None = None) -> Target:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"host must look like http://HOST:PORT or https://HOST:PORT, got {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"bad port in host {url!r}") from None
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"), tls)

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def tls_context(ca_bundle: str = "", insecure: bool = False) -> ssl.SSLContext:
    """Verification against the system CAs, a given CA bundle, or (insecure) none."""
    if insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    try:
        return ssl.create_default_context(cafile=ca_bundle or None)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"{ca_bundle}: not a usable CA file ({exc})") from None


class Connection:
    """One keep-alive connection to one server, used by one greenlet at a time.

    Servers close idle keep-alive connections, and a request written on one that the server has
    closed comes back with no answer. So a kept socket is reused only while it has been idle less
    than ``max_idle`` and the server has not spoken on it (a close, a reset or stray bytes make it
    readable); and a request that went out on a kept socket which the server closed before any
    byte of the response came back is ``unanswered``: most likely the server closed it idle as the
    request went out, and its caller sends it once more on a new connection (never a request that
    got a response byte). When the whole request had been written (``delivered``), the server may
    have read it and failed: the caller puts the resend on the record.
    """

    def __init__(
        self,
        target: Target,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 600.0,
        kernel_timestamps: bool = True,
        max_idle: float = KEEPALIVE_IDLE_S,
    ) -> None:
        self.target = target
        self.kernel_timestamps = kernel_timestamps
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.ssl_context = (target.tls or ssl.create_default_context()) if target.scheme == "https" else None
        self._sock: socket.socket | None = None
        # the kernel stamps this socket's received data
        self.stamped = False
        # kernel unix time of the last read's newest bytes
        self.arrived: float | None = None
        self.max_idle = max_idle
        # monotonic time the socket was opened or its last response ended
        self._idle_since = 0.0
        # the request being sent: on a socket kept from before; a byte of its response came back; the
        # server closed or reset the connection (set by whoever reads it: recv, or the reactor)
        self.reused = False
        self.answered = False
        self.peer_closed = False
        # the whole request was written: the server may have read it
        self.delivered = False

    # -- connection management -------------------------------------------------
    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.target.host, self.target.port), timeout=self.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.target.host)
                self.stamped = False
            else:
                self.stamped = self.kernel_timestamps and stamps.enable_receive_timestamps(sock)
        except ssl.SSLError as exc:
            raise TransportError(f"TLS handshake with {self.target.host}:{self.target.port} failed: {exc}") from None
        except OSError as exc:
            raise TransportError(f"cannot connect to {self.target.host}:{self.target.port}: {os_reason(exc)}") from None
        sock.settimeout(self.read_timeout)
        self._sock = sock
        self._idle_since = time.monotonic()
        return sock

    def connect(self) -> None:
        """Open the connection now, ahead of a request (raises TransportError)."""
        self.drop_if_stale()
        if self._sock is None:
            self._connect()

    def drop_if_stale(self) -> None:
        """Close a kept socket that may no longer be the server's: idle ``max_idle`` or longer, or readable
        while no request is out (the server closed or reset it, or sent what nobody asked for)."""
        sock = self._sock
        if sock is not None and (time.monotonic() - self._idle_since >= self.max_idle or _peer_spoke(sock)):
            self.close()

    def release(self) -> None:
        """The response ended and the connection stays open: it is idle from now."""
        self._idle_since = time.monotonic()

    def begin(self) -> socket.socket:
        """Start a request: drop a stale socket, connect when there is none, and note which it was."""
        self.drop_if_stale()
        self.reused = self._sock is not None
        self.answered = self.peer_closed = self.delivered = False
        return self._sock or self._connect()

    def lost(self) -> None:
        """The server closed the connection under the request being sent."""
        self.close()
        self.peer_closed = True

    @property
    def unanswered(self) -> bool:
        """The request went out on a kept socket that the server closed before any byte of the response
        came back: it may be sent once more on a new connection (see the class's note)."""
        return self.reused and self.peer_closed and not self.answered

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self.arrived = None

    # -- request/response ----------------------------------------------------------
    def send(self, raw: bytes) -> None:
        """Write a request (see ``begin``). Raises TransportError; ``unanswered`` says whether it may be
        sent again."""
        sock = self.begin()
        try:
            sock.sendall(raw)
        except OSError as exc:
            self.lost()
            raise TransportError(f"connection failed while sending: {os_reason(exc)}") from None
        self.delivered = True

    def send_rest(self, raw: bytes, offset: int) -> None:
        """Write the rest of a request whose first ``offset`` bytes went out already (no retry on a new
        socket: the server has part of it)."""
        if self._sock is None:
            raise TransportError("connection failed while sending: closed")
        try:
            self._sock.sendall(memoryview(raw)[offset:])
        except OSError as exc:
            self.close()
            raise TransportError(f"connection failed while sending: {os_reason(exc)}") from None
        self.delivered = True

    def ready_socket(self) -> socket.socket | None:
        """Start a request ahead of its send (``begin``) and return the OS socket to write it to at once
        (None: TLS, or the connection failed, which the send then reports)."""
        with contextlib.suppress(TransportError):
            self.begin()
        return self.os_socket()

    def os_socket(self) -> socket.socket | None:
        """The non-blocking OS socket under gevent's cooperative one (plain TCP only), for a reactor."""
        sock = self._sock
        if sock is None or isinstance(sock, ssl.SSLSocket):
            return None
        # gevent's wrapper keeps the OS socket here
        raw: socket.socket | None = getattr(sock, "_sock", None)
        return raw if raw is not None and not raw.getblocking() else None

    def recv(self) -> bytes:
        """The next bytes of the response, b"" at EOF. Raises TransportError."""
        sock = self._sock
        if sock is None:
            return b""
        try:
            data, self.arrived = stamps.read(sock, self.stamped)
        except TimeoutError:
            self.close()
            raise TransportError(stalled_message(self.read_timeout)) from None
        except OSError as exc:
            self.lost()
            raise TransportError(broken_message(exc)) from None
        if data:
            self.answered = True
        else:
            self.peer_closed = True
        return data


def request_bytes(target: Target, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> bytes:
    """An HTTP/1.1 request as written: the request line, Host, the headers, Content-Length with a body."""
    lines = [f"{method} {target.base_path}{path} HTTP/1.1", f"Host: {target.host_header}"]
    lines.extend(f"{k}: {v}" for k, v in headers.items())
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head


def request(
    conn: Connection, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[Head, bytes]:
    """A plain request/response on ``conn``, for the small control calls (models, tokenize, metrics); sent
    once more on a new connection when ``unanswered``.

    Raises TransportError on any failure, the body over MAX_BODY included.
    """
    raw = request_bytes(conn.target, method, path, body, headers or {})
    try:
        return _exchange(conn, raw)
    except TransportError:
        if not conn.unanswered:
            raise
    return _exchange(conn, raw)


def _exchange(conn: Connection, raw: bytes) -> tuple[Head, bytes]:
    conn.send(raw)
    framing = ResponseFraming()
    parts: list[bytes] = []
    size = 0
    try:
        while not framing.complete:
            data = conn.recv()
            if not data:
                error = framing.eof_error()
                if error:
                    raise TransportError(error)
                break
            payload = framing.feed(data)
            if payload:
                parts.append(payload)
                size += len(payload)
                if size > MAX_BODY:
                    raise TransportError("response body too large")
    except ProtocolError as exc:
        conn.close()
        raise TransportError(f"bad response framing: {exc}") from None
    # a TransportError, or the greenlet killed mid-response: not reusable
    except BaseException:
        conn.close()
        raise
    head = framing.head
    # complete, or ended at a close after the head
    assert head is not None
    if head.closes or framing.ends_at_close:
        conn.close()
    else:
        conn.release()
    return head, b"".join(parts)


def _peer_spoke(sock: socket.socket) -> bool:
    """An idle socket is readable: the server closed or reset it (or sent stray bytes). TLS sockets are
    not looked at (a session ticket may wait there); their idle bound and the resend cover them.

    Under gevent the OS socket beneath is peeked at: gevent's select switches to its hub even with a
    zero timeout, and a request's send, its clocks already started, would wait for every greenlet
    ready to run (measured: 2-8 ms of TTFT error at 128-512 streams)."""
    if isinstance(sock, ssl.SSLSocket):
        return False
    # gevent's wrapper keeps the non-blocking OS socket here
    raw = getattr(sock, "_sock", None)
    try:
        if raw is not None and raw.gettimeout() == 0.0:
            try:
                raw.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                return False
            # b"": closed; or stray bytes
            return True
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def grow_descriptor_table(most: int = 65536) -> None:
    """Grow this process's file-descriptor table to its final size now, before anything is timed.

    Linux doubles the table when a new descriptor does not fit, and in a process with threads
    (gevent's resolver and thread pool) it then waits for an RCU grace period: opening the 257th
    and the 513th socket froze the whole event loop for 10-20 ms in ``bench.open_loop``, and every
    send due meanwhile went out late. Taking one descriptor at the top of the limit (at most
    ``most``) and giving it back leaves the table that large; it never shrinks.
    """
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        top = min(most if soft == resource.RLIM_INFINITY else soft, most) - 1
        fd = os.open(os.devnull, os.O_RDONLY)
        try:
            # the lowest free descriptor >= top: none is taken over
            os.close(fcntl.fcntl(fd, fcntl.F_DUPFD, top))
        finally:
            os.close(fd)
    # no room up there: the table grows as it would have
    except (OSError, ValueError):
        pass


def os_reason(exc: OSError) -> str:
    """A short, stable wording of a socket error, for the ``error`` column."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror})"
    return exc.strerror or exc.__class__.__name__
