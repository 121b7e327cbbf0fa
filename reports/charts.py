"""One function per chart. Each takes data, writes one PNG (150 dpi, >= 1200 px wide), returns its path."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from reports import timeline
from reports.speedup import LATENCY_RATIOS, THROUGHPUT_RATIOS

DPI = 150
# points drawn in a scatter; more are sampled (seeded) to keep plots fast
SCATTER_MAX = 50_000

plt.rcParams.update({"font.size": 10, "axes.titlesize": 12, "axes.grid": True, "grid.alpha": 0.3})


def _save(fig: plt.Figure, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _hist_with_lines(ax, values: np.ndarray, lines: dict[str, float], xlabel: str, log_if_long_tail: bool) -> None:
    values = values[np.isfinite(values)]
    if values.size == 0:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return
    positive = values[values > 0]
    long_tail = log_if_long_tail and positive.size and np.percentile(positive, 99) > 10 * np.median(positive)
    if long_tail:
        bins = np.logspace(np.log10(positive.min()), np.log10(positive.max() * 1.01), 60)
        ax.hist(positive, bins=bins, color="#4C72B0", alpha=0.85)
        ax.set_xscale("log")
    else:
        ax.hist(values, bins=60, color="#4C72B0", alpha=0.85)
    colors = ["#2ca02c", "#ff7f0e", "#d62728", "#9467bd"]
    for (label, x), color in zip(lines.items(), colors, strict=False):
        if np.isfinite(x):
            ax.axvline(x, color=color, linestyle="--", linewidth=1.5, label=f"{label} = {x:,.3g}")
    ax.set_xlabel(xlabel + (" (log scale)" if long_tail else ""))
    ax.set_ylabel("requests")
    ax.legend(loc="upper right")


def seed_figure(rows: pd.DataFrame, path: str, title: str = "") -> str:
    """The seed's four panels: TTFT distribution, decode tok/s, duration vs output length, output lengths."""
    ok = rows[rows["success"]]
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    ttft = ok["ttft_s"].to_numpy(dtype=float)
    finite = ttft[np.isfinite(ttft)]
    pct = {f"p{p}": float(np.percentile(finite, p)) if finite.size else np.nan for p in (50, 90, 99)}
    ax = axes[0, 0]
    _hist_with_lines(ax, ttft, {k: v for k, v in pct.items()}, "time to first token (s)", log_if_long_tail=True)
    ax.set_title("Time to first token")
    ax = axes[0, 1]
    tps = ok["decode_tps"].to_numpy(dtype=float)
    mean_tps = float(np.nanmean(tps)) if np.isfinite(tps).any() else np.nan
    _hist_with_lines(ax, tps, {"mean": mean_tps}, "decode tokens/s per request", log_if_long_tail=False)
    ax.set_title("Decode throughput per request")
    ax = axes[1, 0]
    sample = ok.sample(SCATTER_MAX, random_state=0) if len(ok) > SCATTER_MAX else ok
    ax.scatter(sample["output_tokens"], sample["e2e_s"], s=8, alpha=0.5, color="#4C72B0", edgecolors="none")
    ax.set_xlabel("output tokens")
    ax.set_ylabel("end-to-end duration (s)")
    note = f" ({SCATTER_MAX:,} of {len(ok):,} sampled)" if len(ok) > SCATTER_MAX else ""
    ax.set_title("Total duration vs output length" + note)
    ax = axes[1, 1]
    out = ok["output_tokens"].to_numpy(dtype=float)
    _hist_with_lines(ax, out, {"mean": float(np.nanmean(out)) if out.size else np.nan}, "output tokens", False)
    ax.set_title("Output length distribution")
    fig.suptitle(title or "Per-request latency and throughput", fontsize=14)
    return _save(fig, path)


def percentiles_over_time(
    win: pd.DataFrame, users: pd.DataFrame | None, path: str, note: str = "", steady: list[float] | None = None
) -> str:
    """p50/p95/p99 of TTFT and e2e over time, with users and requests/s; the steady window shaded."""
    fig, axes = plt.subplots(3, 1, figsize=(12, 10), sharex=True)
    if steady:
        for ax in axes:
            ax.axvspan(steady[0], steady[1], color="#2ca02c", alpha=0.08, label="_steady")
        axes[2].text(
            steady[0],
            0.98,
            " steady state",
            transform=axes[2].get_xaxis_transform(),
            va="top",
            fontsize=9,
            color="#2ca02c",
        )
    for ax, name, label in ((axes[0], "ttft", "TTFT"), (axes[1], "e2e", "end-to-end")):
        if not win.empty:
            for q, style in ((50, "-"), (95, "--"), (99, ":")):
                col = f"p{q}_{name}_ms"
                if col in win:
                    ax.plot(win["time_s"], win[col], style, label=f"p{q}", linewidth=1.8)
            ax.legend(loc="upper left")
        ax.set_ylabel(f"{label} (ms)")
        ax.set_title(f"{label} percentiles over time" + (f" — {note}" if note else ""))
    ax = axes[2]
    if not win.empty and "requests_per_s" in win:
        ax.plot(win["time_s"], win["requests_per_s"], color="#2ca02c", label="requests/s")
    ax.set_ylabel("requests/s")
    ax.set_xlabel("time since start (s)")
    if users is not None and not users.empty:
        ax2 = ax.twinx()
        ax2.plot(users["time_s"], users["users"], color="#9467bd", linestyle="--", label="users")
        ax2.set_ylabel("users")
        ax2.grid(False)
        ax2.legend(loc="upper right")
    ax.legend(loc="upper left")
    ax.set_title("Load")
    return _save(fig, path)


def _cdf(ax, values_ms: np.ndarray, label: str) -> None:
    v = np.sort(values_ms[np.isfinite(values_ms)])
    if v.size:
        ax.plot(v, np.arange(1, v.size + 1) / v.size, label=label, linewidth=1.8)


def cdfs(series: dict[str, pd.DataFrame], path: str) -> str:
    """CDFs of TTFT and TPOT; one line per run (several runs overlay for comparison)."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    for name, rows in series.items():
        ok = rows[rows["success"]]
        _cdf(axes[0], ok["ttft_s"].to_numpy(dtype=float) * 1000, name)
        _cdf(axes[1], ok["tpot_s"].to_numpy(dtype=float) * 1000, name)
    for ax, label in ((axes[0], "TTFT (ms)"), (axes[1], "TPOT (ms)")):
        ax.set_xlabel(label)
        ax.set_ylabel("fraction of requests")
        ax.set_ylim(0, 1.01)
        ax.set_title(f"CDF of {label.split()[0]}")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right")
    return _save(fig, path)


def server_metrics(server: pd.DataFrame, path: str) -> str:
    """Running/waiting requests, KV-cache usage and prefix-cache hit rate over time."""
    t = server["time"] - server["time"].iloc[0]
    fig, axes = plt.subplots(3, 1, figsize=(12, 9), sharex=True)
    for col, label in (("num_requests_running", "running"), ("num_requests_waiting", "waiting")):
        if col in server:
            axes[0].plot(t, server[col], label=label)
    axes[0].set_ylabel("requests")
    axes[0].legend(loc="upper left")
    axes[0].set_title("Server queue")
    if "kv_cache_usage_perc" in server:
        axes[1].plot(t, server["kv_cache_usage_perc"] * 100, color="#d62728")
    axes[1].set_ylabel("KV-cache usage (%)")
    axes[1].set_title("KV-cache usage")
    if {"prefix_cache_hits_total", "prefix_cache_queries_total"} <= set(server.columns):
        dq = server["prefix_cache_queries_total"].diff()
        dh = server["prefix_cache_hits_total"].diff()
        rate = (dh / dq.where(dq > 0)) * 100
        axes[2].plot(t, rate, color="#2ca02c", marker=".", label="per interval")
        total = (server["prefix_cache_hits_total"] - server["prefix_cache_hits_total"].iloc[0]) / (
            server["prefix_cache_queries_total"] - server["prefix_cache_queries_total"].iloc[0]
        ).where(lambda s: s > 0)
        axes[2].plot(t, total * 100, color="#1f77b4", linestyle="--", label="cumulative")
        axes[2].legend(loc="lower right")
    axes[2].set_ylabel("prefix-cache hit rate (%)")
    axes[2].set_xlabel("time since first scrape (s)")
    axes[2].set_title("Prefix-cache hit rate")
    return _save(fig, path)


def request_timeline(rows: pd.DataFrame, server: pd.DataFrame | None, users: pd.DataFrame | None, path: str) -> str:
    """Each request from its send to its end (its first token a dot), coloured as ``timeline.colour_by``
    says; beneath, the users, the requests in flight and the server's running and waiting requests."""
    drawn, step = timeline.bars(rows)
    fig, axes = plt.subplots(2, 1, figsize=(12, 9), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax = axes[0]
    for n, (group, part) in enumerate(drawn.groupby("group", sort=True)):
        colour = f"C{n % 10}"
        ax.hlines(part.index, part["sent"], part["end"], colors=colour, linewidth=0.8, label=str(group))
        ax.plot(part["first"], part.index, ".", color=colour, markersize=2)
    shown = f" (every {step}th of {len(rows):,})" if step > 1 else ""
    ax.set_title(f"Requests from send to end, first token dotted{shown}: by {timeline.colour_by(rows)}")
    ax.set_ylabel("request (in order of sending)")
    ax.legend(loc="upper left", fontsize=8, markerscale=4)
    below = axes[1]
    flying = timeline.in_flight(rows)
    below.step(flying["time"], flying["in_flight"], where="post", color="#555", label="in flight (client)")
    if users is not None and not users.empty:
        below.step(users["time_s"], users["users"], where="post", color="#9467bd", linestyle="--", label="users")
    for t, values, label in timeline.server_load(server, rows):
        below.plot(t, values, marker=".", label=label)
    below.set_ylabel("requests")
    below.set_xlabel("time since the first send (s)")
    below.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def client_minus_server_ttft(rows: pd.DataFrame, path: str) -> str:
    """--otlp-port: each request's client TTFT minus its server span's, as a distribution (the network, the
    HTTP server and the client's reading), its p50 and p99 marked."""
    both = rows.dropna(subset=["ttft_s", "server_ttft_s"])
    gap = (both["ttft_s"] - both["server_ttft_s"]).to_numpy(dtype=float) * 1e3
    fig, ax = plt.subplots(figsize=(12, 5))
    _hist_with_lines(
        ax,
        gap,
        {"p50": float(np.median(gap)), "p99": float(np.percentile(gap, 99))},
        "client TTFT − the server's span's TTFT (ms)",
        log_if_long_tail=False,
    )
    ax.set_title(f"Client − server TTFT per request ({len(gap):,} requests joined to their spans)")
    return _save(fig, path)


def gpu_power(telemetry: pd.DataFrame, rows: pd.DataFrame, path: str) -> str:
    """The GPUs' power over the run (each exporter, and their sum) above the output tokens per second."""
    t0 = float(rows["start_time"].min()) if not rows.empty else float(telemetry["time"].min())
    fig, axes = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    for url, one in telemetry.sort_values("time").groupby("url", sort=True):
        axes[0].plot(one["time"] - t0, one["gpu_power_w"], marker=".", label=str(url))
    axes[0].set_ylabel("GPU power (W, the exporter's GPUs)")
    axes[0].set_title("GPU power (--telemetry-url)")
    axes[0].legend(loc="upper left", fontsize=8)
    ok = rows[rows["success"]] if "success" in rows else rows
    if not ok.empty:
        ends = ok["start_time"] + ok["e2e_s"].fillna(0.0) - t0
        per_s = ok.groupby(np.floor(ends))["output_tokens"].sum()
        axes[1].bar(per_s.index + 0.5, per_s.to_numpy(), width=1.0, color="#2ca02c")
    axes[1].set_ylabel("output tokens/s (by completion)")
    axes[1].set_xlabel("time since the first request (s)")
    axes[1].set_title("Throughput")
    return _save(fig, path)


def cache_hit_vs_miss(rows: pd.DataFrame, path: str) -> str:
    """TTFT of requests that hit the prefix cache against those that missed."""
    ok = rows[rows["success"]]
    cached = ok["cached_tokens"].fillna(0)
    groups = {"cache hit": ok.loc[cached > 0, "ttft_s"] * 1000, "cache miss": ok.loc[cached <= 0, "ttft_s"] * 1000}
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    data = [g.dropna().to_numpy() for g in groups.values()]
    labels = [f"{k}\n(n={len(d):,})" for k, d in zip(groups, data, strict=True)]
    if any(len(d) for d in data):
        axes[0].boxplot([d if len(d) else [np.nan] for d in data], tick_labels=labels, showfliers=False)
    axes[0].set_ylabel("TTFT (ms)")
    axes[0].set_title("TTFT by prefix-cache outcome")
    for name, d in zip(groups, data, strict=True):
        _cdf(axes[1], d, name)
    axes[1].set_xlabel("TTFT (ms)")
    axes[1].set_ylabel("fraction of requests")
    axes[1].set_title("CDF of TTFT, hit vs miss")
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(loc="lower right")
    return _save(fig, path)


def locust_percentiles(stats: pd.DataFrame, path: str) -> str:
    """For runs without per-request rows: Locust's own (bucketed) percentiles per request type."""
    cols = [c for c in stats.columns if c.endswith("%")]
    fig, ax = plt.subplots(figsize=(12, 5.5))
    for _, row in stats[stats["Name"] != "Aggregated"].iterrows():
        values = pd.to_numeric(row[cols], errors="coerce").to_numpy(dtype=float)
        ax.plot([float(c.rstrip("%")) for c in cols], values, marker="o", label=f"{row['Type']} {row['Name']}")
    ax.set_xlabel("percentile")
    ax.set_ylabel("ms")
    ax.set_yscale("log")
    ax.set_title("Locust percentiles (bucketed to ~2 significant digits: no per-request rows in this run)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left")
    return _save(fig, path)


def latency_throughput(runs: dict[str, dict], path: str) -> str:
    """A sweep's curves, one line per run: offered vs achieved rate, output tokens/s vs TTFT and TPOT
    (p50 solid, p99 dashed), goodput vs offered rate; the knee (dotted) and the SLO capacity (dash-dot)."""
    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    (rate_ax, ttft_ax), (tpot_ax, good_ax) = axes
    for name, summary in runs.items():
        levels = sorted(summary.get("levels") or [], key=lambda lv: lv.get("offered_rate") or 0.0)
        if not levels:
            continue

        def col(key: str, levels: list[dict] = levels) -> np.ndarray:
            return np.array([np.nan if lv.get(key) is None else lv[key] for lv in levels], dtype=float)

        offered, tokens = col("offered_rate"), col("output_throughput")
        line = rate_ax.plot(offered, col("achieved_rate"), "o-", label=name)[0]
        color = line.get_color()
        ttft_ax.plot(tokens, col("median_ttft_ms"), "o-", color=color, label=f"{name} p50")
        ttft_ax.plot(tokens, col("p99_ttft_ms"), "o--", color=color, label=f"{name} p99")
        tpot_ax.plot(tokens, col("median_tpot_ms"), "o-", color=color, label=f"{name} p50")
        tpot_ax.plot(tokens, col("p99_tpot_ms"), "o--", color=color, label=f"{name} p99")
        good_ax.plot(offered, col("goodput_rps"), "o-", color=color, label=name)
        saturated = col("saturated") > 0
        rate_ax.plot(offered[saturated], col("achieved_rate")[saturated], "x", color="red", markersize=12)
        for ax in (rate_ax, good_ax):
            if summary.get("knee_rate"):
                ax.axvline(summary["knee_rate"], color=color, linestyle=":", alpha=0.7)
            if summary.get("capacity_rps"):
                ax.axvline(summary["capacity_rps"], color=color, linestyle="-.", alpha=0.9)
    top = np.nanmax([rate_ax.get_xlim()[1], rate_ax.get_ylim()[1]])
    rate_ax.plot([0, top], [0, top], color="grey", linewidth=0.8, label="achieved = offered")
    for ax, x, y, title in (
        (rate_ax, "offered rate (req/s)", "achieved rate (req/s)", "Offered vs achieved (x: saturated)"),
        (ttft_ax, "output tokens/s", "TTFT (ms)", "Throughput vs TTFT"),
        (tpot_ax, "output tokens/s", "TPOT (ms)", "Throughput vs TPOT"),
        (good_ax, "offered rate (req/s)", "goodput (SLO-meeting req/s)", "Goodput (dotted: knee, dash-dot: capacity)"),
    ):
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return _save(fig, path)


def prefix_cache_over_trace(trace: dict, path: str) -> str:
    """A replayed trace: the measured prefix-cache hit rate against the trace's ideal per minute, and
    TTFT by the share of the prompt found cached."""
    minutes = pd.DataFrame(trace["prefix_cache_by_trace_minute"])
    shares = pd.DataFrame(trace.get("ttft_by_cached_share") or [])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 5))
    ax.plot(minutes["minute"], minutes["ideal_hit_rate"] * 100, "o--", color="#7f7f7f", label="ideal (unbounded cache)")
    ax.plot(minutes["minute"], minutes["measured_hit_rate"] * 100, "o-", color="#4C72B0", label="measured")
    ax.set_xlabel("minute of the trace")
    ax.set_ylabel("prompt tokens found cached (%)")
    ax.set_ylim(0, 100)
    eff = trace.get("prefix_cache_efficiency")
    shown = f"{eff:.1%}" if isinstance(eff, float) and np.isfinite(eff) else "n/a"
    ax.set_title(f"Prefix cache against the trace's ideal (efficiency {shown})")
    ax.legend(loc="lower right")
    if not shares.empty:
        labels = [
            f"{a:.0%}-{b:.0%}\n({n})"
            for a, b, n in zip(shares["cached_share_from"], shares["cached_share_to"], shares["requests"], strict=True)
        ]
        x = np.arange(len(shares))
        ax2.bar(x - 0.2, shares["median_ttft_ms"], 0.4, label="median", color="#4C72B0")
        ax2.bar(x + 0.2, shares["p99_ttft_ms"], 0.4, label="p99", color="#DD8452")
        ax2.set_xticks(x, labels)
        ax2.set_xlabel("share of the prompt found cached (requests)")
        ax2.set_ylabel("TTFT (ms)")
        ax2.legend()
    ax2.set_title("TTFT by cached share")
    return _save(fig, path)


def kv_working_set(summary: dict, path: str) -> str:
    """A prefix-groups sweep: prefix-cache hit rate (measured and ideal) and TTFT against the working set
    of shared prefixes in tokens; the cliff shaded."""
    levels = sorted(
        (lv for lv in summary.get("levels") or [] if lv.get("working_set_tokens")),
        key=lambda lv: lv["working_set_tokens"],
    )
    fig, (hit_ax, ttft_ax) = plt.subplots(1, 2, figsize=(14, 5))

    def col(key: str) -> np.ndarray:
        return np.array([np.nan if lv.get(key) is None else lv[key] for lv in levels], dtype=float)

    tokens = col("working_set_tokens")
    hit_ax.plot(tokens, col("ideal_prefix_cache_hit_rate") * 100, "o--", color="#7f7f7f", label="ideal (unbounded)")
    hit_ax.plot(tokens, col("measured_prefix_cache_hit_rate") * 100, "o-", color="#4C72B0", label="measured")
    ttft_ax.plot(tokens, col("median_ttft_ms"), "o-", color="#4C72B0", label="p50")
    ttft_ax.plot(tokens, col("p99_ttft_ms"), "o--", color="#DD8452", label="p99")
    found = summary.get("kv_cache_cliff_tokens")
    for ax, y, title in (
        (hit_ax, "prompt tokens found cached (%)", "Prefix-cache hit rate"),
        (ttft_ax, "TTFT (ms)", "TTFT"),
    ):
        if found:
            ax.axvspan(found[0], found[1], color="red", alpha=0.1, label="the cliff")
        if len(tokens) and np.nanmin(tokens) > 0:
            ax.set_xscale("log")
        ax.set_xlabel("working set: shared-prefix tokens (log scale)")
        ax.set_ylabel(y)
        ax.set_title(title + " against the working set")
        ax.legend()
    return _save(fig, path)


def ttft_decomposition(summary: dict, path: str) -> str:
    """Where a request's time to first token went, in means: the server's queue and prefill (its own
    histograms), the rest of its TTFT, and what only the client saw (network, HTTP, the client)."""
    client = summary.get("mean_ttft_ms") or 0.0
    server = summary.get("server_mean_ttft_ms") or 0.0
    queue = summary.get("server_mean_queue_ms")
    prefill = summary.get("server_mean_prefill_ms")
    parts: list[tuple[str, float, str]] = []
    if queue is not None and prefill is not None:
        parts += [
            ("server queue", queue, "#8172B2"),
            ("server prefill", prefill, "#4C72B0"),
            ("server, the rest", max(server - queue - prefill, 0.0), "#64B5CD"),
        ]
    else:
        parts.append(("server TTFT", server, "#4C72B0"))
    parts.append(("client - server", client - server, "#DD8452"))
    fig, ax = plt.subplots(figsize=(12, 4.2))
    left = 0.0
    for label, width, color in parts:
        ax.barh([0], [width], left=[left], color=color, label=f"{label}: {width:,.2f} ms")
        left += max(width, 0.0)
    ax.axvline(client, color="black", linestyle="--", linewidth=1, label=f"client mean TTFT: {client:,.2f} ms")
    ax.set_yticks([])
    ax.set_xlabel("mean milliseconds")
    ax.set_title("Time to first token: the server's queue, prefill and the rest, and the client's share")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3)
    return _save(fig, path)


def prefix_cache_speedup(summary: dict, path: str) -> str:
    """How many times faster the prefix cache makes each figure (the most shared level against the unshared
    one), with its interval; 1× marked."""
    found = summary["prefix_cache_speedup"]
    names = [name for name in (*LATENCY_RATIOS, *THROUGHPUT_RATIOS) if found.get(name) is not None]
    values = np.array([found[name] for name in names], dtype=float)
    intervals = [found.get(f"{name}_ci") or [None, None] for name in names]
    low = np.array([v - (lo if lo is not None else v) for v, (lo, _hi) in zip(values, intervals, strict=True)])
    high = np.array([(hi if hi is not None else v) - v for v, (_lo, hi) in zip(values, intervals, strict=True)])
    fig, ax = plt.subplots(figsize=(12, 6))
    y = np.arange(len(names))
    ax.barh(y, values, xerr=[low, high], color="#4C72B0", alpha=0.85, capsize=4)
    ax.axvline(1.0, color="#7f7f7f", linestyle="--", label="1×: no speed-up")
    ax.set_yticks(y, [name.replace("_ms", "").replace("_", " ") for name in names])
    ax.invert_yaxis()
    level = float(summary.get("ci_level") or 0.95)
    ax.set_xlabel(f"times faster with the shared prefix (bars: {level:.0%} intervals)")
    ax.set_title(f"Prefix cache speed-up: {found['prefix_tokens']:,} shared tokens against none")
    ax.legend(loc="lower right")
    return _save(fig, path)


def tuning_pareto(points: list[dict], best: str | None, path: str) -> str:
    """A tuning grid's points: output tokens/s per user (1 / mean TPOT) against output tokens/s of the server
    (per GPU when every point says its ``gpus``), the points no other beats on both joined (the Pareto front),
    the best by the objective marked."""
    fig, ax = plt.subplots(figsize=(12, 7))
    per_gpu = bool(points) and all(p.get("gpus") for p in points)
    xy = [
        (
            p["name"],
            p["figures"].get("output_throughput"),
            p["figures"].get("mean_tpot_ms"),
            float(p["gpus"]) if per_gpu else 1.0,
        )
        for p in points
    ]
    found = [(name, float(x) / gpus, 1000.0 / float(t)) for name, x, t, gpus in xy if x and t]
    for name, x, y in found:
        ax.scatter([x], [y], s=80 if name == best else 40, color="#d62728" if name == best else "#4C72B0", zorder=3)
        ax.annotate(
            name + (" (best)" if name == best else ""), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8
        )
    front = sorted(
        (x, y) for _n, x, y in found if not any(x2 >= x and y2 >= y and (x2, y2) != (x, y) for _m, x2, y2 in found)
    )
    if len(front) >= 2:
        ax.plot([x for x, _ in front], [y for _, y in front], "--", color="#7f7f7f", label="Pareto front")
        ax.legend()
    ax.set_xlabel("output tokens/s per GPU" if per_gpu else "output tokens/s of the server")
    ax.set_ylabel("output tokens/s per user (1000 / mean TPOT ms)")
    ax.set_title("Tuning: each point of the grid (the mean of its runs, no intervals drawn)")
    return _save(fig, path)


def sessions_by_turn(summary: dict, path: str) -> str:
    """TTFT p50 by turn (with its interval) and, beside it, the hit rate and the history kept by turn."""
    turns = summary["by_turn"]
    x = np.array([t["turn"] for t in turns])
    p50 = np.array([t["ttft_p50_ms"] if t["ttft_p50_ms"] is not None else np.nan for t in turns], dtype=float)
    bounds = [t.get("ttft_p50_ms_ci") or [None, None] for t in turns]
    low = np.array([v - b[0] if b[0] is not None else 0.0 for v, b in zip(p50, bounds, strict=True)])
    high = np.array([b[1] - v if b[1] is not None else 0.0 for v, b in zip(p50, bounds, strict=True)])
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    left.errorbar(x, p50, yerr=[np.clip(low, 0, None), np.clip(high, 0, None)], marker="o", capsize=4)
    left.set_xlabel("turn")
    left.set_ylabel("TTFT p50 (ms; bars: intervals where bounded)")
    left.set_title(f"TTFT by turn ({summary.get('sessions')} sessions)")
    hit = [t["hit_rate"] if t["hit_rate"] is not None else np.nan for t in turns]
    kept = [t.get("history_kept", np.nan) for t in turns]
    right.plot(x, hit, marker="o", label="prompt tokens cached (hit rate)", color="#55A868")
    right.plot(x, kept, marker="s", label="history kept (of its whole blocks)", color="#C44E52")
    right.set_ylim(0, 1.05)
    right.set_xlabel("turn")
    right.set_title("Prefix cache by turn")
    right.legend(loc="lower right")
    for ax in (left, right):
        ax.set_xticks(x)
    return _save(fig, path)


def retention(summary: dict, path: str) -> str:
    """A think-time sweep: the share of later turns whose history was kept, by think time, with intervals."""
    found = summary["retention"]
    gaps = np.array([g["think_time_s"] for g in found], dtype=float)
    kept = np.array([g["kept"] for g in found], dtype=float)
    ci = [g["kept_ci"] for g in found]
    low = np.array(
        [k - c[0] if c[0] is not None and not np.isnan(c[0]) else 0.0 for k, c in zip(kept, ci, strict=True)]
    )
    high = np.array(
        [c[1] - k if c[1] is not None and not np.isnan(c[1]) else 0.0 for k, c in zip(kept, ci, strict=True)]
    )
    fig, ax = plt.subplots(figsize=(12, 5))
    ax.errorbar(gaps, kept, yerr=[np.clip(low, 0, None), np.clip(high, 0, None)], marker="o", capsize=4)
    ax.axhline(0.5, color="#7f7f7f", linestyle="--", label="half")
    if gaps.size and gaps.min() > 0:
        ax.set_xscale("log")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("think time between turns (s)")
    ax.set_ylabel("later turns whose history was kept")
    ax.set_title("How long the server keeps a session's history")
    ax.legend(loc="upper right")
    return _save(fig, path)
