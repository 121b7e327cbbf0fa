"""A run's requests on one time line: each request from its send to its end with its first token, coloured
by what sets it apart (its model, level or stage, else a cache hit or miss), and the load beneath it
(requests in flight, counted from every request). Pure: rows in, frames out; ``charts.request_timeline``
and ``interactive.timeline`` draw them.

A run of more requests than ``TIMELINE_MAX`` draws every k-th request in order of sending (the chart says
which share it shows); the in-flight count is always every request's.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# requests drawn as bars; beyond, every k-th
TIMELINE_MAX = 5_000
# the in-flight curve's points at most
IN_FLIGHT_POINTS = 2_000


def colour_by(rows: pd.DataFrame) -> str:
    """The column whose values set the requests apart: model, level, stage, else the cache's hit or miss."""
    for column in ("model", "level", "stage"):
        if column in rows and rows[column].dropna().astype(str).replace("", np.nan).dropna().nunique() > 1:
            return column
    return "cache"


def bars(rows: pd.DataFrame, limit: int = TIMELINE_MAX) -> tuple[pd.DataFrame, int]:
    """The requests to draw (every k-th in order of sending) and k. Columns: ``sent``, ``first``, ``end``
    (seconds since the first send; ``first`` NaN without a token), ``group`` (the colour's value), ``success``."""
    if rows.empty:
        return pd.DataFrame(columns=["sent", "first", "end", "group", "success"]), 1
    ordered = rows.sort_values("start_time", kind="stable")
    step = max(1, math.ceil(len(ordered) / limit))
    drawn = ordered.iloc[::step]
    t0 = float(ordered["start_time"].iloc[0])
    by = colour_by(rows)
    if by == "cache":
        cached = pd.to_numeric(drawn["cached_tokens"], errors="coerce").fillna(0)
        group = np.where(cached > 0, "cache hit", "cache miss")
    else:
        group = drawn[by].astype(str).to_numpy()
    e2e = pd.to_numeric(drawn["e2e_s"], errors="coerce").fillna(0.0)
    out = pd.DataFrame(
        {
            "sent": drawn["start_time"].to_numpy(float) - t0,
            "first": (drawn["start_time"] + pd.to_numeric(drawn["ttft_s"], errors="coerce")).to_numpy(float) - t0,
            "end": (drawn["start_time"] + e2e).to_numpy(float) - t0,
            "group": group,
            "success": drawn["success"].to_numpy(bool),
        }
    )
    return out.reset_index(drop=True), step


def in_flight(rows: pd.DataFrame, points: int = IN_FLIGHT_POINTS) -> pd.DataFrame:
    """Requests in flight over time (every request), at most ``points`` samples: ``time`` (s since the first
    send) and ``in_flight`` (the most in flight within each sample's step, so no peak is lost)."""
    if rows.empty:
        return pd.DataFrame(columns=["time", "in_flight"])
    t0 = float(rows["start_time"].min())
    starts = rows["start_time"].to_numpy(float) - t0
    ends = starts + pd.to_numeric(rows["e2e_s"], errors="coerce").fillna(0.0).to_numpy(float)
    times = np.concatenate([starts, ends])
    steps = np.concatenate([np.ones(len(starts)), -np.ones(len(ends))])
    # at equal times an end before a start
    order = np.lexsort((steps, times))
    times, counts = times[order], np.cumsum(steps[order])
    span = float(times[-1]) if len(times) else 0.0
    width = max(span / points, 1e-9)
    bins = np.floor(times / width).astype(np.int64)
    frame = pd.DataFrame({"bin": bins, "count": counts}).groupby("bin")["count"].max()
    return pd.DataFrame({"time": frame.index.to_numpy(float) * width, "in_flight": frame.to_numpy(float)})


SERVER_SERIES = (("num_requests_running", "running (server)"), ("num_requests_waiting", "waiting (server)"))


def server_load(server: pd.DataFrame | None, rows: pd.DataFrame) -> list[tuple[pd.Series, pd.Series, str]]:
    """The server's running and waiting requests per scrape (seconds since the first send), with labels."""
    if server is None or server.empty or rows.empty:
        return []
    t = server["time"] - float(rows["start_time"].min())
    return [(t, server[column], label) for column, label in SERVER_SERIES if column in server]
