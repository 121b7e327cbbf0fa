"""Service-level objectives (``ttft_ms=500,tpot_ms=50,e2el_ms=10000``) and whether a request met them.

One rule for the run (the capacity search counts requests as they finish) and for the reports
(goodput, attainment): a request meets the SLO when it succeeded and each given limit holds;
a request with one output token has no TPOT, and that limit does not apply to it (vLLM's goodput).
``met`` takes scalars or numpy arrays alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from scheduler.errors import ParameterError

# SLO key -> per-request column
KEYS = {"ttft_ms": "ttft_s", "tpot_ms": "tpot_s", "e2el_ms": "e2e_s"}


def parse_slo(text: str | None) -> dict[str, float]:
    """``ttft_ms=500,tpot_ms=50,e2el_ms=10000`` -> {"ttft_ms": 500.0, ...}; ValueError with one line."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in KEYS:
            raise ParameterError("slo", f" takes ttft_ms=…,tpot_ms=…,e2el_ms=… (milliseconds); got {part.strip()!r}")
        try:
            limit = float(value)
        except ValueError:
            raise ParameterError("slo", f" value for {key} must be a number, got {value.strip()!r}") from None
        if not limit > 0:
            raise ParameterError("slo", f" {key} must be positive, got {value.strip()}")
        out[key] = limit
    return out


def format_slo(slo: Mapping[str, float]) -> str:
    """An SLO as ``parse_slo`` reads it."""
    return ",".join(f"{key}={limit:g}" for key, limit in slo.items())


def goodput_as_slo(items: tuple[str, ...] | list[str]) -> str:
    """``vllm bench serve``'s goodput (``ttft:500 tpot:50``) as an SLO (``ttft_ms=500,tpot_ms=50``); a
    ParameterError with one line."""
    parts = []
    for item in items:
        key, sep, value = item.partition(":")
        if not sep or f"{key.strip()}_ms" not in KEYS:
            raise ParameterError(
                "goodput", f" takes KEY:MS with KEY ttft, tpot or e2el (as vllm bench serve); got {item!r}"
            )
        parts.append(f"{key.strip()}_ms={value.strip()}")
    text = ",".join(parts)
    try:
        parse_slo(text)
    except ParameterError as exc:
        raise ParameterError("goodput", exc.rest) from None
    return text


def met(slo: Mapping[str, float], success: Any, ttft_s: Any, tpot_s: Any, e2e_s: Any) -> Any:
    """True where a request met every limit (scalars, or numpy arrays of one length)."""
    values = {"ttft_s": ttft_s, "tpot_s": tpot_s, "e2e_s": e2e_s}
    ok = np.asarray(success, dtype=bool)
    for key, limit in slo.items():
        column = KEYS[key]
        v = np.asarray(values[column], dtype=float) * 1000.0
        within = v <= limit
        if column == "tpot_s":
            within = within | np.isnan(v)
        ok = ok & within
    return ok
