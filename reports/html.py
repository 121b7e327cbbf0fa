"""One self-contained HTML page: summary table, charts (embedded), and the run's configuration."""

from __future__ import annotations

import base64
import html
import math
import os

from reports.interactive import plotly_js

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1em; max-width: 1500px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 3px 10px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } figure { margin: 1.5em 0; } .note { color: #8a5a00; }
#answers li { font-size: 1.15em; margin: 0.4em 0; } summary { cursor: pointer; font-weight: 600; margin: 1em 0; }
"""
# settings that may hold a secret, by name (not by part of a name: input_tokens is no secret)
SECRET_NAMES = frozenset({"api_key", "headers", "header", "authorization", "password", "secret", "token"})
BREAKDOWNS = {
    "hosts": "Per host (-H)",
    "replicas": "Per replica (/metrics)",
    "stages": "Per stage (--stages)",
    # summary keys shown as tables of their own
}
# objects of figures
SECTIONS = {"steady": "Steady state (requests sent between the ramp-up and the drain)"}


def _fmt(value: object) -> str:
    """A value as a person writes it: numbers to four significant digits with thousands separators (no
    exponents), yes/no, an interval as low–high, nothing as –."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return number(value)
    if isinstance(value, list | tuple):
        if not value:
            return "–"
        if len(value) == 2 and all(v is None or isinstance(v, int | float) for v in value):
            return f"{_fmt(value[0])}–{_fmt(value[1])}"
        return ", ".join(_fmt(v) for v in value)
    return html.escape(str(value))


def number(value: float, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits, in plain notation."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    places = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{round(value, places):,.{places}f}"
    # 300, not 300.0
    return text.rstrip("0").rstrip(".") if places else text


def title_of(name: str, config: dict) -> str:
    """The page's title: the run, its server and model, its load and its date (what the configuration has)."""
    parts = [f"Load test report: {name}"]
    where = " ".join(str(x) for x in (config.get("model"), f"at {config['host']}" if config.get("host") else None) if x)
    if where:
        parts.append(where)
    load = load_of(config)
    if load:
        parts.append(load)
    if config.get("started"):
        parts.append(str(config["started"])[:16].replace("T", " "))
    return ", ".join(parts)


def load_of(config: dict) -> str:
    """The run's load in a few words, from its configuration."""
    if config.get("find_capacity"):
        return "capacity search" + (f" ({config['slo']})" if config.get("slo") else "")
    if config.get("sweep"):
        return f"sweep {config['sweep']}"
    if config.get("trace"):
        return f"trace replay at {config.get('trace_speed') or 1:g}×"
    if config.get("request_rate"):
        return f"{config['request_rate']:g} req/s"
    users = config.get("users")
    if not users:
        return ""
    total = f", {config['num_requests']:,} requests" if config.get("num_requests") else ""
    return f"{users} users{total}"


def _img(path: str) -> str:
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode()
    alt = html.escape(os.path.basename(path))
    return f'<figure><img alt="{alt}" src="data:image/png;base64,{data}"><figcaption>{alt}</figcaption></figure>'


def safe_config(config: dict) -> dict:
    """The configuration without the settings that may hold a secret (``SECRET_NAMES``, or a name ending
    in one: ``hf_token``)."""
    return {
        k: v
        for k, v in config.items()
        if k.lower() not in SECRET_NAMES and not any(k.lower().endswith(f"_{w}") for w in SECRET_NAMES)
    }


def shown(summary: dict, key: str) -> str:
    """A summary figure as the page shows it: a percentile read from a histogram whose bucket is wider than
    half the interpolated value is no sharper than its bucket, so the bucket's bound stands for it."""
    value, bounds = summary.get(key, ""), summary.get(f"{key}_bounds")
    if isinstance(value, float) and isinstance(bounds, list) and len(bounds) == 2 and not math.isnan(value):
        low, high = bounds
        if high is None:
            return f"≥ {_fmt(float(low))}"
        if high - low > value / 2:
            return f"≤ {_fmt(float(high))}" if low == 0 else f"{_fmt(float(low))}–{_fmt(float(high))}"
    return _fmt(value)


def summary_table(summaries: dict[str, dict]) -> str:
    names = list(summaries)
    keys: list[str] = []
    for s in summaries.values():
        keys.extend(k for k in s if k not in keys and k not in BREAKDOWNS and k not in SECTIONS)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join(
        f"<tr><td>{html.escape(k)}</td>" + "".join(f"<td>{shown(summaries[n], k)}</td>" for n in names) + "</tr>"
        for k in keys
    )
    return f"<table><tr><th>metric</th>{head}</tr>{body}</table>"


def breakdowns(summaries: dict[str, dict]) -> str:
    """A run's per-host and per-replica figures, one table each (columns: the hosts or replicas); its steady
    state's figures beside the runs'."""
    out = []
    for key, title in SECTIONS.items():
        figures = {name: s[key] for name, s in summaries.items() if isinstance(s.get(key), dict)}
        if figures:
            out.append(f"<h2>{html.escape(title)}</h2>{summary_table(figures)}")
    for key, title in BREAKDOWNS.items():
        for name, summary in summaries.items():
            parts = summary.get(key)
            if isinstance(parts, dict) and parts:
                heading = title if len(summaries) == 1 else f"{title}: {name}"
                out.append(f"<h2>{html.escape(heading)}</h2>{summary_table(parts)}")
    return "".join(out)


def write_report(
    path: str,
    title: str,
    summaries: dict[str, dict],
    charts: list[str],
    config: dict,
    notes: list[str],
    answers: list[str] | None = None,
    interactive: list[str] | None = None,
) -> str:
    """The page: the answers first, then the charts (interactive where given; the PNGs folded), the
    breakdowns, and every figure and the configuration last, folded."""
    conf = safe_config(config)
    conf_rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{_fmt(v)}</td></tr>" for k, v in conf.items())
    note_html = "".join(f"<p class=note>{html.escape(n)}</p>" for n in notes)
    answer_html = "".join(f"<li>{html.escape(a)}</li>" for a in answers or [])
    script = f"<script>{plotly_js()}</script>" if interactive else ""
    pngs = "".join(_img(c) for c in charts)
    static = (
        f"<details><summary>Static charts (PNG, for papers and slides)</summary>{pngs}</details>"
        if interactive
        else pngs
    )
    keys = sum(len(s) for s in summaries.values())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style>{script}</head><body>
<h1>{html.escape(title)}</h1>
{f'<ul id="answers">{answer_html}</ul>' if answer_html else ""}
{note_html}
<h2>Charts</h2>
{"".join(interactive or [])}
{static}
{breakdowns(summaries)}
<details><summary>Every figure ({keys} keys)</summary>
<p>Keys follow vLLM's <code>bench serve</code> result JSON; times in ms. TPOT = (e2e − TTFT) / (output tokens − 1);
ITL gaps are pooled over all successful requests.</p>
{summary_table(summaries)}
</details>
<details><summary>Configuration</summary>
<table>{conf_rows or "<tr><td>not recorded</td><td></td></tr>"}</table>
</details>
</body></html>
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path
