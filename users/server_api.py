"""Control-plane calls to the server (not timed): models, and checks before a run."""

from __future__ import annotations

import orjson

from users.http import Connection, Target, TransportError
from users.options import ConfigError


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def list_models(target: Target, api_key: str | None, timeout: float = 10.0) -> list[str]:
    """The ids from ``GET /v1/models``; a ConfigError that says why, when that fails."""
    conn = Connection(target, connect_timeout=timeout, read_timeout=timeout)
    where = f"{target.scheme}://{target.host_header}{target.base_path}"
    try:
        head, body = conn.request("GET", "/v1/models", headers=auth_headers(api_key))
    except TransportError as exc:
        raise ConfigError(f"server {where} is unreachable: {exc}") from None
    finally:
        conn.close()
    if head.status in (401, 403):
        raise ConfigError(f"server {where} refused the API key (HTTP {head.status}); set --api-key or OPENAI_API_KEY")
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
