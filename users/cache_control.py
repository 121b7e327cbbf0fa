"""Prefix-cache state before measuring: reset it, and prime it with unmeasured warm-up requests."""

from __future__ import annotations

import logging
from collections.abc import Callable

from users.http import Connection, Target, TransportError
from users.stream import Endpoint, build_payload, stream_request

logger = logging.getLogger(__name__)


def reset_prefix_cache(target: Target, headers: dict[str, str]) -> bool:
    """``POST /reset_prefix_cache``; a clear warning when the server does not allow it."""
    conn = Connection(target, read_timeout=60.0)
    try:
        head, _ = conn.request("POST", "/reset_prefix_cache", b"", headers)
    except TransportError as exc:
        logger.warning("could not reset the prefix cache: %s", exc)
        return False
    finally:
        conn.close()
    if head.status == 200:
        logger.info("prefix cache reset")
        return True
    logger.warning(
        "the server does not allow resetting its prefix cache (HTTP %s; vLLM needs VLLM_SERVER_DEV_MODE=1): "
        "a cache left warm by an earlier run can make this one look faster",
        head.status,
    )
    return False


def warm_up(
    target: Target,
    endpoint: Endpoint,
    model: str,
    headers: dict[str, str],
    prompts: list[str],
    run_all: Callable[[list[Callable[[], object]]], None] | None = None,
) -> int:
    """Send each prompt once with ``max_tokens=1``, unmeasured; returns how many succeeded."""
    ok = 0

    def one(content: str) -> None:
        nonlocal ok
        conn = Connection(target, read_timeout=600.0)
        try:
            rec = stream_request(conn, endpoint, build_payload(endpoint, model, content, 1), headers)
        finally:
            conn.close()
        if rec.success:
            ok += 1
        else:
            logger.warning("warm-up request failed: %s", rec.error)

    jobs = [lambda c=c: one(c) for c in prompts]
    if run_all is not None:
        run_all(jobs)
    else:
        for job in jobs:
            job()
    return ok
