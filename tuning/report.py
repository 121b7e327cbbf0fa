"""The tuning loop's page: ``DIR/tuning_report.html`` with the Pareto chart and the points side by side."""

from __future__ import annotations

from pathlib import Path

from reports import charts
from reports.html import write_report
from tuning.results import best_sentence


def write_tuning_report(out: Path, summary: dict) -> str:
    best = summary.get("best") or {}
    done = [p for p in summary["points"] if p["status"] == "ok"]
    chart = charts.tuning_pareto(done, best.get("name"), str(out / "tuning_pareto.png"))
    notes = [best_sentence(best)] if best else []
    notes += [f"Point {p['name']} failed: {p['reason']}" for p in summary["points"] if p["status"] != "ok"]
    for setting, effects in (summary.get("setting_effects") or {}).items():
        for e in effects:
            said = [
                f"{label} ×{e[key]:.3g}{_band(e.get(f'{key}_ci'), e.get('ci_level'))}"
                for key, label in (("mean_ttft_ms", "mean TTFT"), ("output_throughput", "output tokens/s"))
                if e.get(key)
            ]
            if said:
                how = e.get("ci_method") or "no interval: the runs' files are gone"
                notes.append(f"{setting} {e['from']} → {e['to']}: {', '.join(said)} ({how}).")
    figures = {p["name"]: {**p["settings"], **p["figures"]} for p in done}
    return write_report(str(out / "tuning_report.html"), "Tuning: the server's settings", figures, [chart], {}, notes)


def _band(interval: list | None, level: float | None) -> str:
    low, high = interval or (None, None)
    return f" ({level or 0.95:.0%} CI {low:.3g}–{high:.3g})" if low is not None and high is not None else ""
