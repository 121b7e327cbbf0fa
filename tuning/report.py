"""The tuning loop's page: ``DIR/tuning_report.html`` with the Pareto chart and the points side by side."""

from __future__ import annotations

from pathlib import Path

from reports import charts
from reports.html import write_report


def write_tuning_report(out: Path, summary: dict) -> str:
    best = summary.get("best") or {}
    done = [p for p in summary["points"] if p["status"] == "ok"]
    chart = charts.tuning_pareto(done, best.get("name"), str(out / "tuning_pareto.png"))
    notes = [f"Best by {best['objective']}: {best['name']} ({best['value']:.4g})."] if best else []
    notes += [f"Point {p['name']} failed: {p['reason']}" for p in summary["points"] if p["status"] != "ok"]
    for setting, effects in (summary.get("setting_effects") or {}).items():
        for e in effects:
            ttft, tput = e.get("mean_ttft_ms"), e.get("output_throughput")
            if ttft and tput:
                notes.append(f"{setting} {e['from']} → {e['to']}: mean TTFT ×{ttft:.3g}, output tokens/s ×{tput:.3g} "
                             f"(geometric mean over {e['pairs']} pair(s) of points, no interval without repeat).")  # fmt: skip
    figures = {p["name"]: {**p["settings"], **p["figures"]} for p in done}
    return write_report(str(out / "tuning_report.html"), "Tuning: the server's settings", figures, [chart], {}, notes)
