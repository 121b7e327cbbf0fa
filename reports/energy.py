"""Energy and cost per token: pure functions over ``PREFIX_gpu_telemetry.csv`` (``--telemetry-url``) and the
run's price (``--gpu-hour-cost``, ``--gpus``).

Energy over a span is the exporter's energy counter's difference where it has one (interpolated at the
span's ends), else its power integrated (trapezoids between scrapes). Integrated power is no surer than the
scrapes: ``energy_j_bounds`` brackets it by the lower and the higher power of each interval between them.
Power and energy are summed over an exporter's GPUs and over exporters; utilization is averaged.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

SECONDS_PER_HOUR = 3600.0


def energy_between(samples: pd.DataFrame, t0: float, t1: float) -> dict[str, object]:
    """The GPUs' energy (J) and mean power (W) from unix time ``t0`` to ``t1``, their mean utilization, and
    how the energy was found ({} without samples that cover part of the span)."""
    if samples is None or samples.empty or not t1 > t0:
        return {}
    energy = low = high = 0.0
    sources, utilization = set(), []
    for _, one in samples.sort_values("time").groupby("url", sort=True):
        t = one["time"].to_numpy(float)
        if t[-1] <= t0 or t[0] >= t1:
            continue
        counter = one["gpu_energy_j"].to_numpy(float)
        if np.isfinite(counter).all() and t[0] <= t0 and t[-1] >= t1:
            used = float(np.interp(t1, t, counter) - np.interp(t0, t, counter))
            energy, low, high = energy + used, low + used, high + used
            sources.add("energy counter")
        else:
            used, lo, hi = _integrated(t, one["gpu_power_w"].to_numpy(float), t0, t1)
            energy, low, high = energy + used, low + lo, high + hi
            sources.add("power integrated")
        inside = one[(one["time"] >= t0) & (one["time"] <= t1)]["gpu_utilization"].dropna()
        if not inside.empty:
            utilization.append(float(inside.mean()))
    if not sources:
        return {}
    out: dict[str, object] = {
        "energy_j": energy,
        "mean_gpu_power_w": energy / (t1 - t0),
        "gpu_utilization": sum(utilization) / len(utilization) if utilization else None,
        "gpu_energy_source": " and ".join(sorted(sources)),
    }
    if "power integrated" in sources:
        out["energy_j_bounds"] = [low, high]
    return out


def _integrated(t: np.ndarray, power: np.ndarray, t0: float, t1: float) -> tuple[float, float, float]:
    """The power's integral over the span, with its bracket; a span past the scrapes takes the nearest
    scrape's power (flat), which the bracket does not cover."""
    keep = np.isfinite(power)
    t, power = t[keep], power[keep]
    if t.size == 0:
        return 0.0, 0.0, 0.0
    inner = (t > t0) & (t < t1)
    times = np.concatenate(([t0], t[inner], [t1]))
    watts = np.interp(times, t, power)
    steps = np.diff(times)
    pairs = np.stack([watts[:-1], watts[1:]])
    return (
        float(np.sum(steps * pairs.mean(axis=0))),
        float(np.sum(steps * pairs.min(axis=0))),
        float(np.sum(steps * pairs.max(axis=0))),
    )


def energy_figures(samples: pd.DataFrame | None, t0: float, t1: float, output_tokens: int) -> dict[str, object]:
    """A run's (or a level's) energy figures: energy, mean power, utilization, joules per output token."""
    if samples is None:
        return {}
    out = energy_between(samples, t0, t1)
    if out and output_tokens:
        out["joules_per_output_token"] = float(out["energy_j"]) / output_tokens  # type: ignore[arg-type]
    return out


def cost_figures(
    gpu_hour_cost: float | None, gpus: int | None, duration_s: float, output_tokens: int, input_tokens: int
) -> dict[str, float]:
    """What a million tokens cost at ``gpus`` GPUs for ``gpu_hour_cost`` USD an hour each, over the run's
    duration: the GPUs' hours, however busy, divided by the tokens they produced ({} without a price)."""
    if not gpu_hour_cost or not gpus or not duration_s or not math.isfinite(duration_s):
        return {}
    usd = gpu_hour_cost * gpus * duration_s / SECONDS_PER_HOUR
    out = {"run_cost_usd": usd}
    if output_tokens:
        out["usd_per_million_output_tokens"] = usd / output_tokens * 1e6
    if output_tokens or input_tokens:
        out["usd_per_million_total_tokens"] = usd / (output_tokens + input_tokens) * 1e6
    return out
