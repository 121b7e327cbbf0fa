"""A small keep-alive HTTP/1.1 client that hands bytes over the moment they arrive.

Generic HTTP clients read streamed bodies in fixed-size blocks, which holds
SSE events back on slow streams. This one returns whatever one ``recv`` gave,
so the caller can timestamp every read. It uses the ``socket`` and ``ssl``
modules as they are at call time: under Locust, gevent has patched them.

On Linux, plain-TCP connections ask the kernel to stamp received data
(``SO_TIMESTAMPNS``). ``recvmsg`` then says when the newest bytes of a read
reached the socket, so a read that came late (the client was busy with other
streams) is still dated by the arrival of its bytes, not by when Python got to it.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import sys
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from users.sse import ChunkedDecoder

RECV_SIZE = 65536
MAX_HEAD = 65536

# SO_TIMESTAMPNS is 35 on Linux; Python does not export the name. The control message it
# produces has the same number and carries a struct timespec (two C longs).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None)
_TIMESPEC = struct.Struct("@ll")
ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
MAX_LAG_S = 60.0  # a larger gap between arrival and read means a clock step, not a late read


def enable_receive_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp this socket's received data; False where it cannot."""
    if SO_TIMESTAMPNS is None or not ANCILLARY_SIZE:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


_stamping_holder: socket.socket | None = None


def keep_kernel_stamping_on() -> None:
    """Hold one stamping socket for the life of the process.

    The kernel stamps packets only while some socket asks for it, and turns stamping on
    in a deferred work item: packets that arrive in between carry no stamp (and are dated
    by the read). Held from the start, the first requests of a run are dated like the rest.
    """
    global _stamping_holder
    if _stamping_holder is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if enable_receive_timestamps(sock):
            _stamping_holder = sock
        else:
            sock.close()


def receive_timestamp(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The kernel's unix time of arrival from ``recvmsg``'s ancillary data, if present."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return seconds + nanoseconds * 1e-9
    return None


def arrival_on(now: float, arrived: float | None) -> float:
    """When data arrived, on a clock that reads ``now``: ``now`` less the time it waited unread.

    ``arrived`` is the kernel's unix time of arrival (None when unknown: ``now``).
    """
    if arrived is None:
        return now
    waited = time.time() - arrived
    return now - waited if 0.0 < waited < MAX_LAG_S else now


def stalled_message(seconds: float) -> str:
    return f"stalled: no data for {seconds:g} s"


def broken_message(exc: OSError) -> str:
    return f"connection broken mid-response: {os_reason(exc)}"


class TransportError(Exception):
    """The connection failed: refused, reset, closed early, timed out or garbled."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    base_path: str  # "" or a path prefix without a trailing slash

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"host must look like http://HOST:PORT or https://HOST:PORT, got {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"bad port in host {url!r}") from None
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


@dataclass(slots=True)
class Head:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None and value.isdigit() else None


def parse_head(raw: bytes) -> Head:
    """The status line and headers (without the blank line). Raises TransportError."""
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise TransportError(f"not an HTTP response: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Head(int(parts[1]), parts[2] if len(parts) > 2 else "", headers)


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
        raise ValueError(f"--ca-bundle {ca_bundle}: not a usable CA file ({exc})") from None


_default_tls: ssl.SSLContext | None = None


def configure_tls(ca_bundle: str = "", insecure: bool = False) -> None:
    """Set how every https connection of this process verifies the server (from the options)."""
    global _default_tls
    _default_tls = tls_context(ca_bundle, insecure) if (ca_bundle or insecure) else None


class Connection:
    """One keep-alive connection to one server, used by one greenlet at a time."""

    def __init__(
        self,
        target: Target,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 600.0,
        ssl_context: ssl.SSLContext | None = None,
        kernel_timestamps: bool = True,
    ) -> None:
        self.target = target
        self.kernel_timestamps = kernel_timestamps
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        if target.scheme == "https" and ssl_context is None:
            ssl_context = _default_tls or ssl.create_default_context()
        self.ssl_context = ssl_context
        self._sock: socket.socket | None = None
        self._buf = b""
        self.stamped = False  # the kernel stamps this socket's received data
        self.arrived: float | None = None  # kernel unix time of the last read's newest bytes

    # -- connection management -------------------------------------------------
    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.target.host, self.target.port), timeout=self.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.target.host)
                self.stamped = False
            else:
                self.stamped = self.kernel_timestamps and enable_receive_timestamps(sock)
        except ssl.SSLError as exc:
            raise TransportError(f"TLS handshake with {self.target.host}:{self.target.port} failed: {exc}") from None
        except OSError as exc:
            raise TransportError(f"cannot connect to {self.target.host}:{self.target.port}: {os_reason(exc)}") from None
        sock.settimeout(self.read_timeout)
        self._sock = sock
        self._buf = b""
        return sock

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self._buf = b""
        self.arrived = None

    # -- request/response ----------------------------------------------------------
    def build_request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> bytes:
        lines = [f"{method} {self.target.base_path}{path} HTTP/1.1", f"Host: {self.target.host_header}"]
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + body if body else head

    def send(self, raw: bytes) -> bool:
        """Write a request. Returns True when it went out on a reused socket."""
        reused = self._sock is not None
        sock = self._sock or self._connect()
        try:
            sock.sendall(raw)
        except OSError as exc:
            self.close()
            if not reused:
                raise TransportError(f"connection failed while sending: {os_reason(exc)}") from None
            sock = self._connect()  # a stale keep-alive socket: the server never saw the request
            reused = False
            try:
                sock.sendall(raw)
            except OSError as exc2:
                self.close()
                raise TransportError(f"connection failed while sending: {os_reason(exc2)}") from None
        return reused

    def take_buffered(self) -> bytes:
        """Body bytes that arrived together with the headers."""
        data, self._buf = self._buf, b""
        return data

    def os_socket(self) -> socket.socket | None:
        """The non-blocking OS socket under gevent's cooperative one (plain TCP only), for a reactor."""
        sock = self._sock
        if sock is None or isinstance(sock, ssl.SSLSocket):
            return None
        raw = getattr(sock, "_sock", None)
        return raw if raw is not None and not raw.getblocking() else None

    def arrival(self, now: float) -> float:
        """When the bytes of the last read arrived, on the caller's clock that reads ``now``."""
        return arrival_on(now, self.arrived)

    def recv(self) -> bytes:
        """The next bytes of the response body, b"" at EOF. Raises TransportError.

        Bytes buffered with the headers keep the arrival time of the read that got them.
        """
        if self._buf:
            data, self._buf = self._buf, b""
            return data
        sock = self._sock
        if sock is None:
            return b""
        try:
            if self.stamped:
                data, ancillary, _flags, _addr = sock.recvmsg(RECV_SIZE, ANCILLARY_SIZE)
                self.arrived = receive_timestamp(ancillary)
                return data
            return sock.recv(RECV_SIZE)
        except TimeoutError:
            self.close()
            raise TransportError(stalled_message(self.read_timeout)) from None
        except OSError as exc:
            self.close()
            raise TransportError(broken_message(exc)) from None

    def read_head(self) -> Head:
        """Read the status line and headers; body bytes read with them stay buffered."""
        buf = self._buf
        self._buf = b""
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buf) > MAX_HEAD:
                self.close()
                raise TransportError("response headers too large")
            data = self.recv()
            if not data:
                self.close()
                if buf:
                    raise TransportError("connection closed in the middle of the response headers")
                raise TransportError("connection closed before the response headers")
            buf += data
        self._buf = buf[end + 4 :]
        try:
            return parse_head(buf[:end])
        except TransportError:
            self.close()
            raise

    def read_body(self, head: Head, limit: int = 16 * 1024 * 1024) -> bytes:
        """Read a whole (non-streamed) body."""
        out = []
        size = 0
        if head.chunked:
            dec = ChunkedDecoder()
            while not dec.done:
                data = self.recv()
                if not data:
                    self.close()
                    raise TransportError("connection closed in the middle of the response body")
                piece = dec.feed(data)
                out.append(piece)
                size += len(piece)
                if size > limit:
                    self.close()
                    raise TransportError("response body too large")
            self._after_body(head)
            return b"".join(out)
        length = head.content_length
        while length is None or size < length:
            data = self.recv()
            if not data:
                if length is None:
                    break
                self.close()
                raise TransportError("connection closed in the middle of the response body")
            out.append(data)
            size += len(data)
            if size > limit:
                self.close()
                raise TransportError("response body too large")
        body = b"".join(out)
        if length is not None and size > length:
            self._buf = body[length:]
            body = body[:length]
        if length is None:
            self.close()
        else:
            self._after_body(head)
        return body

    def _after_body(self, head: Head) -> None:
        if head.headers.get("connection", "").lower() == "close":
            self.close()

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[Head, bytes]:
        """A plain request/response, for the small control calls (models, tokenize, metrics)."""
        self.send(self.build_request(method, path, body, headers or {}))
        head = self.read_head()
        return head, self.read_body(head)


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
