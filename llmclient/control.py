"""The server's control plane (never timed): models, ``/tokenize``, the prefix cache's reset and warm-up.

``/metrics`` is ``server_metrics.py``'s.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import orjson

from llmclient.errors import ConfigError, KeyRefused, TransportError
from llmclient.http import Connection, Target, request
from llmclient.stream import Endpoint, build_payload, stream_request

logger = logging.getLogger(__name__)


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def list_models(target: Target, api_key: str | None, timeout: float = 10.0) -> list[str]:
    """The ids from ``GET /v1/models``; a ConfigError that says why, when that fails."""
    conn = Connection(target, connect_timeout=timeout, read_timeout=timeout)
    where = f"{target.scheme}://{target.host_header}{target.base_path}"
    try:
        head, body = request(conn, "GET", "/v1/models", headers=auth_headers(api_key))
    except TransportError as exc:
        raise ConfigError(f"server {where} is unreachable: {exc}") from None
    finally:
        conn.close()
    if head.status in (401, 403):
        raise KeyRefused(f"server {where} refused the API key (HTTP {head.status})")
    if head.status != 200:
        raise ConfigError(
            f"server {where} is not OpenAI-compatible: GET /v1/models answered HTTP {head.status} {head.reason}".rstrip()
        )
    try:
        obj = orjson.loads(body)
        models = [m["id"] for m in obj["data"]]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise ConfigError(
            f"server {where} is not OpenAI-compatible: GET /v1/models did not return a model list"
        ) from None
    if not models:
        raise ConfigError(f"server {where} serves no models")
    return [str(m) for m in models]


def resolve_model(target: Target, api_key: str | None, wanted: str) -> str:
    """The model to request: ``wanted`` when the server serves it, else its first model."""
    models = list_models(target, api_key)
    if not wanted:
        return models[0]
    if wanted not in models:
        shown = ", ".join(models[:5]) + (" …" if len(models) > 5 else "")
        raise ConfigError(f"model {wanted!r} is not served by {target.host_header}; it serves: {shown}")
    return wanted


def check_endpoint(target: Target, api_key: str | None, endpoint: Endpoint, timeout: float = 10.0) -> bool:
    """Whether the server shows ``endpoint``'s route before the run: a ``GET`` of it, which a FastAPI server
    (vLLM) refuses as the wrong method (405) where the route is. Nothing runs on the server. A 404 proves
    nothing (many servers, Go's gin among them, answer an unknown method so): False, and the run's first
    answer decides (``users/services/recorder.py``). Raises ConfigError when the server is unreachable."""
    conn = Connection(target, connect_timeout=timeout, read_timeout=timeout)
    try:
        head, _ = request(conn, "GET", endpoint.path, headers=auth_headers(api_key))
    except TransportError as exc:
        raise ConfigError(f"server {target.host_header} is unreachable: {exc}") from None
    finally:
        conn.close()
    return head.status != 404


PROFILER_HINT = 'start vLLM with --profiler-config \'{"profiler": "torch", "torch_profiler_dir": "/tmp/vllm-profile"}\''


def check_profiler(target: Target, headers: dict[str, str], timeout: float = 10.0) -> None:
    """That the server has its profiler's routes (``GET /start_profile``: 405 when it has, 404 when not)."""
    conn = Connection(target, connect_timeout=timeout, read_timeout=timeout)
    try:
        head, _ = request(conn, "GET", "/start_profile", headers=headers)
    except TransportError as exc:
        raise ConfigError(f"server {target.host_header} is unreachable: {exc}") from None
    finally:
        conn.close()
    if head.status == 404:
        raise ConfigError(f"server {target.host_header} has no profiler enabled (no /start_profile): {PROFILER_HINT}")


def profiler(target: Target, headers: dict[str, str], action: str) -> None:
    """``POST /start_profile`` or ``/stop_profile`` (``action``: start or stop); ConfigError with why when the
    server refuses. Stopping writes the trace, which can take a while: a long timeout."""
    conn = Connection(target, connect_timeout=10.0, read_timeout=600.0)
    try:
        head, body = request(conn, "POST", f"/{action}_profile", b"", headers)
    except TransportError as exc:
        raise ConfigError(f"could not {action} the profiler of {target.host_header}: {exc}") from None
    finally:
        conn.close()
    if head.status == 404:
        raise ConfigError(f"server {target.host_header} has no profiler enabled: {PROFILER_HINT}")
    if head.status != 200:
        raise ConfigError(
            f"the profiler of {target.host_header} did not {action} (HTTP {head.status}): "
            f"{body[:200].decode('utf-8', 'replace')}"
        )


def reset_prefix_cache(target: Target, headers: dict[str, str]) -> bool:
    """``POST /reset_prefix_cache``; a clear warning when the server does not allow it."""
    conn = Connection(target, read_timeout=60.0)
    try:
        head, _ = request(conn, "POST", "/reset_prefix_cache", b"", headers)
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
    run_all: Callable[[list[Callable[[], None]]], None] | None = None,
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

    jobs: list[Callable[[], None]] = [functools.partial(one, c) for c in prompts]
    if run_all is not None:
        run_all(jobs)
    else:
        for job in jobs:
            job()
    return ok


class ServerTokenizer:
    """vLLM's ``POST /tokenize`` (applies the chat template for ``messages``): a token counter."""

    def __init__(
        self, target: Target, model: str, headers: dict[str, str], timeout: float = 30.0, without_route: str = ""
    ) -> None:
        """``without_route``: what to do instead, said when the server has no ``/tokenize``."""
        self.target = target
        self.without_route = without_route
        self.model = model
        self.headers = {"Content-Type": "application/json", **headers}
        self.timeout = timeout
        self._idle: list[Connection] = []
        self.name = f"{target.host_header}/tokenize"
        # the model's context, as /tokenize says it
        self.max_model_len: int | None = None

    def count(self, content: str, chat: bool) -> int:
        body: dict[str, object] = {"model": self.model}
        if chat:
            body.update(messages=[{"role": "user", "content": content}], add_generation_prompt=True)
        else:
            body.update(prompt=content, add_special_tokens=True)
        conn = self._idle.pop() if self._idle else Connection(self.target, read_timeout=self.timeout)
        try:
            head, raw = request(conn, "POST", "/tokenize", orjson.dumps(body), self.headers)
        except TransportError as exc:
            conn.close()
            raise ConfigError(f"cannot count tokens with {self.name}: {exc}") from None
        self._idle.append(conn)
        if head.status in (404, 405):
            raise ConfigError(
                f"the server has no /tokenize endpoint (HTTP {head.status}); {self.without_route}".rstrip("; ")
            )
        if head.status != 200:
            raise ConfigError(f"{self.name} answered HTTP {head.status}: {raw[:200].decode('utf-8', 'replace')}")
        try:
            answer = orjson.loads(raw)
            limit = answer.get("max_model_len")
            self.max_model_len = int(limit) if isinstance(limit, int) else self.max_model_len
            return int(answer["count"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            raise ConfigError(f"{self.name} did not return a token count") from None

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
