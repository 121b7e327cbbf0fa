"""The report's interactive charts (plotly): hover for values, zoom, series toggled from the legend. One
function per chart; each returns a figure drawn from summaries of the rows (quantiles, windows, every k-th
request), never a point per request, so a run of a million requests gives a page of a few megabytes.
``html_of`` writes one as a ``<div>``; the page carries plotly.js once, inline, so it opens offline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.offline
from plotly.subplots import make_subplots

from reports import timeline
from reports.metrics import latency_values

# quantiles drawn per CDF
CDF_POINTS = 1_000
CONFIG = {"displaylogo": False, "responsive": True}


def plotly_js() -> str:
    """plotly.js itself, for one inline ``<script>`` (the page needs no network)."""
    return str(plotly.offline.get_plotlyjs())


def html_of(fig: go.Figure, div_id: str) -> str:
    return str(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=CONFIG))


def cdfs(rows: pd.DataFrame) -> go.Figure:
    """TTFT, TPOT and ITL as cumulative distributions (their quantiles): hover for the percentile's value."""
    fig = go.Figure()
    quantiles = np.linspace(0, 1, CDF_POINTS)
    ok = rows[rows["success"] & ~rows["cancelled"]]
    for name, label in (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2el", "E2E")):
        values = latency_values(ok, name)
        values = values[np.isfinite(values)] * 1e3
        if values.size == 0:
            continue
        fig.add_trace(
            go.Scatter(
                x=np.quantile(values, quantiles),
                y=quantiles * 100,
                mode="lines",
                name=label,
                hovertemplate=f"{label} %{{x:.4g}} ms at p%{{y:.1f}}<extra></extra>",
                visible=True if name in ("ttft", "tpot") else "legendonly",
            )
        )
    fig.update_layout(
        title="Latency distributions (click the legend for ITL and E2E)",
        xaxis_title="ms",
        yaxis_title="percentile",
        xaxis_type="log",
        hovermode="closest",
        height=450,
    )
    return fig


def over_time(win: pd.DataFrame, users: pd.DataFrame | None) -> go.Figure:
    """TTFT's and E2E's p50/p95/p99 per window over the run, and requests/s with the users beneath."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.06)
    if not win.empty:
        for name, label in (("ttft", "TTFT"), ("e2e", "E2E")):
            for q in (50, 95, 99):
                column = f"p{q}_{name}_ms"
                if column in win:
                    fig.add_trace(
                        go.Scatter(
                            x=win["time_s"],
                            y=win[column],
                            mode="lines",
                            name=f"{label} p{q}",
                            visible=True if name == "ttft" else "legendonly",
                        ),
                        row=1,
                        col=1,
                    )
        fig.add_trace(
            go.Scatter(x=win["time_s"], y=win["requests_per_s"], mode="lines", name="requests/s"), row=2, col=1
        )
    if users is not None and not users.empty:
        fig.add_trace(
            go.Scatter(x=users["time_s"], y=users["users"], mode="lines", name="users", line={"dash": "dash"}),
            row=2,
            col=1,
        )
    fig.update_layout(title="Over the run (windows)", hovermode="x unified", height=550)
    fig.update_yaxes(title_text="ms", row=1, col=1)
    fig.update_xaxes(title_text="time since the start (s)", row=2, col=1)
    return fig


def request_timeline(rows: pd.DataFrame, server: pd.DataFrame | None, users: pd.DataFrame | None) -> go.Figure:
    """Each request from send to end (its first token a dot; hover for its figures), coloured as
    ``timeline.colour_by`` says; beneath, requests in flight and the server's running and waiting. Zoom
    with a drag; double-click to see it all."""
    drawn, step = timeline.bars(rows)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.75, 0.25], vertical_spacing=0.05)
    _add_requests(fig, drawn)
    _add_load(fig, rows, server, users)
    shown = f", every {step}th of {len(rows):,} requests" if step > 1 else ""
    fig.update_layout(
        title=f"Request timeline (by {timeline.colour_by(rows)}{shown}): drag to zoom", height=650, hovermode="closest"
    )
    fig.update_yaxes(title_text="request (in order of sending)", row=1, col=1)
    fig.update_yaxes(title_text="requests", row=2, col=1)
    fig.update_xaxes(title_text="time since the first send (s)", row=2, col=1)
    return fig


def _add_requests(fig: go.Figure, drawn: pd.DataFrame) -> None:
    """The upper panel: a line per request from send to end, a dot at its first token."""
    for group, part in drawn.groupby("group", sort=True):
        n = len(part)
        xs = np.column_stack([part["sent"], part["end"], np.full(n, np.nan)]).ravel()
        ys = np.column_stack([part.index, part.index, np.full(n, np.nan)]).ravel()
        fig.add_trace(
            go.Scattergl(
                x=xs, y=ys, mode="lines", name=str(group), legendgroup=str(group), line={"width": 1}, hoverinfo="skip"
            ),
            row=1,
            col=1,
        )
        text = [
            f"request {i}: TTFT {(f - s) * 1e3:.1f} ms, E2E {(e - s) * 1e3:.1f} ms"
            for i, s, f, e in zip(part.index, part["sent"], part["first"], part["end"], strict=True)
        ]
        fig.add_trace(
            go.Scattergl(
                x=part["first"],
                y=part.index,
                mode="markers",
                name=f"{group}: first token",
                legendgroup=str(group),
                showlegend=False,
                marker={"size": 4},
                text=text,
                hovertemplate="%{text}<extra></extra>",
            ),
            row=1,
            col=1,
        )


def _add_load(fig: go.Figure, rows: pd.DataFrame, server: pd.DataFrame | None, users: pd.DataFrame | None) -> None:
    """The lower panel: requests in flight, the users, and the server's running and waiting."""
    flying = timeline.in_flight(rows)
    fig.add_trace(
        go.Scatter(
            x=flying["time"],
            y=flying["in_flight"],
            mode="lines",
            line_shape="hv",
            name="in flight (client)",
            line={"color": "#555"},
        ),
        row=2,
        col=1,
    )
    if users is not None and not users.empty:
        fig.add_trace(
            go.Scatter(
                x=users["time_s"], y=users["users"], mode="lines", line_shape="hv", name="users", line={"dash": "dash"}
            ),
            row=2,
            col=1,
        )
    for t, values, label in timeline.server_load(server, rows):
        fig.add_trace(go.Scatter(x=t, y=values, mode="lines+markers", name=label), row=2, col=1)
