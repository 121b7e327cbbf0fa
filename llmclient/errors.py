"""The client's failures. Each is one line of text meant for the user."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class ConfigError(Exception):
    """Bad input or an unusable server, found before the run: one line, then a non-zero exit."""


class KeyRefused(ConfigError):
    """The server refused the API key (401 or 403)."""


class TransportError(Exception):
    """The connection failed: refused, reset, closed early, timed out or garbled."""


class ProtocolError(Exception):
    """The byte stream is not valid HTTP chunked framing or SSE."""


def one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Every error of ``parser`` (a bad option value, a missing argument) as one line on stderr and exit
    status 2, with no usage dump."""

    def error(message: str) -> NoReturn:
        sys.stderr.write(f"{parser.prog}: error: {message}\n")
        sys.exit(2)

    parser.error = error  # type: ignore[method-assign]
