"""The client's failures. Each is one line of text meant for the user."""

from __future__ import annotations


class ConfigError(Exception):
    """Bad input or an unusable server, found before the run: one line, then a non-zero exit."""


class TransportError(Exception):
    """The connection failed: refused, reset, closed early, timed out or garbled."""


class ProtocolError(Exception):
    """The byte stream is not valid HTTP chunked framing or SSE."""
