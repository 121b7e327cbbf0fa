"""``python -m reports compare BASE NEW [--max-regression 5%]``: did NEW get better or worse than BASE?

Each of BASE and NEW is a run's ``--csv`` prefix or the JSON ``vllm bench serve --save-result
--save-detailed`` writes. For each headline figure: the change (NEW / BASE − 1), its interval and a
verdict: ``better`` or ``worse`` when the whole interval lies on one side of no change, else ``no clear
change``. The interval comes from the repetitions when both runs have them (``--repeat``: Welch's t on
the repetitions' figures), else from a bootstrap over the two runs' requests (latencies) or the ratio of
two Poisson rates (throughputs). Exit status 3 when a figure is worse by more than ``--max-regression``
over its whole interval.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmclient.errors import one_line_errors
from reports.checks import FAILED_STATUS
from reports.intervals import HEADLINE, ci_level_error, finite, statistic
from reports.load import ReportInputError, load_run
from reports.metrics import STATISTIC_OF, latency_figure
from reports.repeats import REPEATED
from reports.speedup import bootstrap_values, latency_ratio, rate_ratio
from reports.summary import summary_of

LATENCY_KEYS = tuple(f"{stat}_{name}_ms" for name in HEADLINE for stat in STATISTIC_OF)
# higher is better
THROUGHPUT_KEYS = ("request_throughput", "output_throughput")


@dataclass
class Side:
    """One run to compare: its successful requests, its figures, its repetitions' figures (or none)."""

    name: str
    rows: pd.DataFrame
    figures: dict
    repeats: list[dict]
    # a run's settings (PREFIX_config.json); None for a vllm bench serve result
    config: dict | None = None


@dataclass(frozen=True)
class Change:
    key: str
    base: float | None
    new: float | None
    # NEW / BASE - 1
    relative: float | None
    interval: tuple[float | None, float | None]
    # better, worse, no clear change
    verdict: str

    def line(self, level: float) -> str:
        def pct(v: float | None) -> str:
            return "n/a" if v is None else f"{v:+.1%}"

        low, high = self.interval
        base = "n/a" if self.base is None else f"{self.base:.4g}"
        new = "n/a" if self.new is None else f"{self.new:.4g}"
        return (
            f"{self.key}: {base} -> {new} ({pct(self.relative)}, {level:.0%} CI {pct(low)} to {pct(high)}): "
            f"{self.verdict}"
        )


# the settings that make two runs' figures comparable (the load, the prompts, the outputs)
LOAD_SETTINGS = (
    "users",
    "spawn_rate",
    "num_requests",
    "run_time",
    "request_rate",
    "burstiness",
    "max_concurrency",
    "input_tokens",
    "prefix_tokens",
    "prefix_groups",
    "max_tokens",
    "ignore_eos",
    "endpoint",
    "dataset",
    "model",
    "sweep",
    "stages",
    "trace",
    "turns",
    "images",
)


def differing_settings(base: dict | None, new: dict | None) -> list[str]:
    """``name: BASE -> NEW`` for each load setting in which two runs differ (none when either has no config)."""
    if not base or not new:
        return []
    return [f"{key}: {base.get(key)} -> {new.get(key)}" for key in LOAD_SETTINGS if base.get(key) != new.get(key)]


def load_side(path: str) -> Side:
    """A run's prefix, or a ``vllm bench serve`` result JSON (one clear ReportInputError otherwise)."""
    if path.endswith(".json") and os.path.isfile(path):
        return _vllm_result(path)
    run = load_run(path)
    if run.requests is None or run.requests.empty:
        raise ReportInputError(f"{path}: compare needs the run's _requests.csv")
    summary, _notes = summary_of(run, {})
    rows = run.requests[run.requests["success"] & ~run.requests["cancelled"]]
    return Side(run.name, rows, summary, summary.get("repeats") or [], run.config)


def _vllm_result(path: str) -> Side:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise ReportInputError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("ttfts"), list):
        raise ReportInputError(
            f"{path}: no per-request figures (ttfts): save it with vllm bench serve --save-result --save-detailed"
        )
    n = len(data["ttfts"])
    errors = data.get("errors") or [""] * n
    latencies = data.get("latencies") or [math.nan] * n
    outputs = data.get("output_lens") or [0] * n
    frame = pd.DataFrame(
        {
            "ttft_s": data["ttfts"],
            "e2e_s": latencies,
            "output_tokens": outputs,
            "itl_s": [" ".join(f"{g:.6f}" for g in gaps or []) for gaps in data.get("itls") or [[]] * n],
            "error": errors,
        }
    )
    steps = (frame["output_tokens"] - 1).where(frame["output_tokens"] > 1)
    frame["tpot_s"] = (frame["e2e_s"] - frame["ttft_s"]) / steps
    rows = frame[frame["error"].fillna("") == ""]
    figures = {key: data.get(key) for key in (*LATENCY_KEYS, *THROUGHPUT_KEYS, "completed", "duration")}
    figures["duration_s"] = data.get("duration")
    return Side(os.path.basename(path), rows, figures, [])


# BASE's figure, NEW's, the change's interval
Estimate = tuple[float | None, float | None, list[float | None]]


def latency_change(base: Side, new: Side, key: str, level: float) -> Estimate:
    """A latency figure of each run's requests, and the bootstrap interval of NEW / BASE − 1 over them."""
    name, q = latency_figure(key)
    a, b = bootstrap_values(new.rows, name), bootstrap_values(base.rows, name)
    _ratio, interval = latency_ratio(a, b, q, level)
    if a.size < 2 or b.size < 2:
        return None, None, [None, None]
    stat = statistic(q)
    return float(stat(b)) * 1e3, float(stat(a)) * 1e3, [None if x is None else x - 1 for x in interval]


def throughput_change(base: Side, new: Side, key: str, level: float) -> Estimate:
    """NEW / BASE − 1 of a throughput, its interval the ratio of two Poisson rates (output tokens: scaled by
    the ratio of mean output lengths)."""
    t_new, t_base = float(new.figures.get("duration_s") or 0), float(base.figures.get("duration_s") or 0)
    _ratio, (low, high) = rate_ratio(len(new.rows), t_new, len(base.rows), t_base, level)
    scale = 1.0
    if key == "output_throughput":
        scale = float(new.rows["output_tokens"].mean()) / float(base.rows["output_tokens"].mean())
    return (
        finite(base.figures.get(key)),
        finite(new.figures.get(key)),
        [None if low is None else low * scale - 1, None if high is None else high * scale - 1],
    )


def repeated_change(base: Side, new: Side, key: str, level: float) -> Estimate:
    """The repetitions' mean figure of each run, and Welch's t interval of the difference over BASE's mean."""
    a = np.array([r[key] for r in new.repeats if r.get(key) is not None], dtype=float)
    b = np.array([r[key] for r in base.repeats if r.get(key) is not None], dtype=float)
    if a.size < 2 or b.size < 2 or b.mean() == 0:
        return None, None, [None, None]
    from scipy import stats

    interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence_level=level)
    mean = float(b.mean())
    return mean, float(a.mean()), [finite(interval.low / mean), finite(interval.high / mean)]


def changes(base: Side, new: Side, level: float) -> list[Change]:
    out = []
    repeated = len(base.repeats) >= 2 and len(new.repeats) >= 2
    for key in (*LATENCY_KEYS, *THROUGHPUT_KEYS):
        if repeated and key in REPEATED:
            was, now, interval = repeated_change(base, new, key, level)
        elif key in LATENCY_KEYS:
            was, now, interval = latency_change(base, new, key, level)
        else:
            was, now, interval = throughput_change(base, new, key, level)
        relative = now / was - 1 if was and now is not None else None
        out.append(Change(key, was, now, relative, (interval[0], interval[1]), verdict(key, interval)))
    return out


def verdict(key: str, interval: list[float | None]) -> str:
    """better / worse when the whole interval lies on one side of no change (latency: lower is better)."""
    low, high = interval
    if low is None or high is None:
        return "no clear change"
    worse_up = key in LATENCY_KEYS
    if low > 0:
        return "worse" if worse_up else "better"
    if high < 0:
        return "better" if worse_up else "worse"
    return "no clear change"


def regressed(change: Change, threshold: float) -> bool:
    """Worse by more than ``threshold`` over the whole interval."""
    low, high = change.interval
    if change.verdict != "worse" or low is None or high is None:
        return False
    return low > threshold if change.key in LATENCY_KEYS else high < -threshold


def parse_share(text: str) -> float:
    """``5%`` or ``0.05`` -> 0.05 (argparse type)."""
    try:
        value = float(text[:-1]) / 100 if text.strip().endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share such as 5% or 0.05, got {text!r}") from None
    if not 0 <= value < 10:
        raise argparse.ArgumentTypeError(f"expected a share such as 5% or 0.05, got {text!r}")
    return value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reports compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("base", metavar="BASE", help="a run's --csv prefix, or a vllm bench serve result JSON")
    parser.add_argument("new", metavar="NEW", help="the same, for the run to judge")
    parser.add_argument(
        "--max-regression",
        type=parse_share,
        default=0.05,
        metavar="SHARE",
        help="exit 3 when a figure is worse by more than this over its whole interval (default 5%%)",
    )
    parser.add_argument("--ci-level", type=float, default=0.95, help="confidence level of the intervals (0.95)")
    one_line_errors(parser)
    args = parser.parse_args(argv)
    try:
        if ci_level_error(args.ci_level):
            raise ValueError(ci_level_error(args.ci_level))
        base, new = load_side(args.base), load_side(args.new)
    except (ReportInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    found = changes(base, new, args.ci_level)
    print(f"compare {base.name} -> {new.name}:")
    differ = differing_settings(base.config, new.config)
    if differ:
        print("  the runs differ in their load, not only in the server: " + "; ".join(differ))
    for change in found:
        print(f"  {change.line(args.ci_level)}")
    bad = [c.key for c in found if regressed(c, args.max_regression)]
    if bad:
        print(f"regression beyond {args.max_regression:.0%}: {', '.join(bad)}")
        return FAILED_STATUS
    return 0
