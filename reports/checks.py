"""Checks on a run's summary that can fail a CI job: ``p99_ttft_ms<=2500``, ``failed==0``,
``prefix_cache_hit_rate>=0.7``, ``steady.p99_ttft_ms<=2000`` (a dotted key reads inside an object).

A figure with an interval (``<key>_ci``) passes only when the whole interval meets the bound, fails
when none of it does, and is otherwise ``inconclusive``, saying why and what would settle it; a
figure without one is judged by its value. ``python -m tuning``'s ``subject_to`` is judged the same way.
Each verdict is one line, and all of them a JUnit file (``PREFIX_checks.xml``) for CI systems.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from reports.intervals import finite
from reports.keys import unknown_key_error

# the process's exit status when a check failed
FAILED_STATUS = 3
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_FORM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.:/-]*)\s*(<=|>=|==|!=|<|>)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Check:
    key: str
    op: str
    bound: float

    @property
    def name(self) -> str:
        return f"{self.key}{self.op}{self.bound:g}"


@dataclass(frozen=True)
class Verdict:
    check: Check
    value: float | None
    interval: tuple[float | None, float | None] | None
    # pass, fail or inconclusive
    outcome: str
    # why it is inconclusive, and what would settle it
    reason: str = ""

    def line(self, level: float) -> str:
        shown = "n/a" if self.value is None else f"{self.value:.6g}"
        if self.interval is not None:
            low, high = (("–" if b is None else f"{b:.6g}") for b in self.interval)
            shown += f" ({level:.0%} CI {low} to {high})"
        return f"check {self.check.name}: {shown}: {self.outcome}" + (f" ({self.reason})" if self.reason else "")


def fewest_for_bound(percentile: float, level: float) -> int:
    """The fewest values whose distribution-free ``level`` interval of a ``percentile`` (0..100) has an upper
    bound (the largest value must lie above it with the interval's one-sided confidence): p^n <= (1 - level) / 2."""
    p = percentile / 100
    return 1 if p <= 0 else math.floor(math.log((1 - level) / 2) / math.log(p)) + 1


def inconclusive_reason(
    check: Check, summary: Mapping[str, object], interval: tuple[float | None, float | None], level: float
) -> str:
    """Why an interval cannot settle ``check``: a bound the data cannot give, or an interval across the bound."""
    name = check.key.rpartition(".")[2]
    stat = name.split("_", 1)[0]
    missing = interval[1] is None if check.op in ("<", "<=") else interval[0] is None
    if missing and stat.startswith("p") and stat[1:].isdigit():
        scope, _, _ = check.key.rpartition(".")
        try:
            completed, _ = lookup(summary, f"{scope}.completed" if scope else "completed")
        except KeyError:
            completed = None
        side = "upper" if check.op in ("<", "<=") else "lower"
        need = fewest_for_bound(float(stat[1:]), level)
        had = f"; this run had {completed:,}" if isinstance(completed, int) else ""
        return f"a {level:.0%} {side} bound of a {stat} needs at least {need:,} requests{had}"
    if missing:
        return f"this run's data give no {level:.0%} bound on that side"
    return f"the {level:.0%} interval reaches both sides of {check.bound:g}: a longer run narrows it"


def parse_check(text: str) -> Check:
    """``KEY OP NUMBER`` (raises ValueError with one line, also for a key no summary holds)."""
    match = _FORM.match(text)
    if match is None:
        raise ValueError(f"--check {text!r}: expected KEY OP NUMBER, e.g. p99_ttft_ms<=2500 (OP: <=, <, >=, >, ==, !=)")
    try:
        bound = float(match.group(3))
    except ValueError:
        raise ValueError(f"--check {text!r}: {match.group(3)!r} is not a number") from None
    problem = unknown_key_error(match.group(1))
    if problem:
        raise ValueError(problem)
    return Check(match.group(1), match.group(2), bound)


def check_error(text: str) -> str | None:
    """Why ``text`` is not a check (None: it is one)."""
    try:
        parse_check(text)
    except ValueError as exc:
        return str(exc)
    return None


def lookup(summary: Mapping[str, object], key: str) -> tuple[object, object]:
    """The figure a (dotted) key names, and its ``_ci`` (raises KeyError when the summary has no such key):
    ``p99_ttft_ms``, ``steady.p99_ttft_ms``, ``models.NAME.p99_ttft_ms`` (NAME may hold dots: a host's URL)."""
    parts = key.split(".")
    path, last = ([parts[0], ".".join(parts[1:-1])] if len(parts) > 2 else parts[:-1]), parts[-1]
    scope: object = summary
    for part in path:
        if not isinstance(scope, Mapping) or part not in scope:
            raise KeyError(key)
        scope = scope[part]
    if not isinstance(scope, Mapping) or last not in scope:
        raise KeyError(key)
    return scope[last], scope.get(f"{last}_ci")


def judge(check: Check, summary: Mapping[str, object]) -> Verdict:
    """One check's verdict on a summary (inconclusive when this run's summary lacks the figure)."""
    try:
        raw, raw_ci = lookup(summary, check.key)
    except KeyError:
        return Verdict(check, None, None, "inconclusive", f"this run's summary has no {check.key}")
    value = finite(raw)
    meets = OPERATORS[check.op]
    interval = (finite(raw_ci[0]), finite(raw_ci[1])) if isinstance(raw_ci, list | tuple) and len(raw_ci) == 2 else None
    if interval is not None and check.op not in ("==", "!="):
        low, high = interval
        # the end of the interval farthest from the bound on the passing side, and the nearest one
        worst, best = (high, low) if check.op in ("<", "<=") else (low, high)
        if worst is not None and meets(worst, check.bound):
            return Verdict(check, value, interval, "pass")
        if best is not None and not meets(best, check.bound):
            return Verdict(check, value, interval, "fail")
        level = float(finite(summary.get("ci_level")) or 0.95)
        return Verdict(check, value, interval, "inconclusive", inconclusive_reason(check, summary, interval, level))
    if value is None:
        return Verdict(check, None, None, "inconclusive", f"this run has no value of {check.key}")
    return Verdict(check, value, None, "pass" if meets(value, check.bound) else "fail")


def failed(verdicts: list[Verdict], inconclusive_passes: bool) -> list[Verdict]:
    return [v for v in verdicts if v.outcome == "fail" or (v.outcome == "inconclusive" and not inconclusive_passes)]


def junit(suite: str, verdicts: list[Verdict], level: float, inconclusive_passes: bool) -> str:
    """The verdicts as a JUnit XML test suite: one test case per check."""
    bad = {id(v) for v in failed(verdicts, inconclusive_passes)}
    cases = []
    for v in verdicts:
        body = f"<failure message={quoteattr(v.line(level))}/>" if id(v) in bad else ""
        cases.append(f"  <testcase classname={quoteattr(suite)} name={quoteattr(v.check.name)}>{body}</testcase>")
    head = f'<testsuite name={quoteattr(suite)} tests="{len(verdicts)}" failures="{len(bad)}">'
    return '<?xml version="1.0" encoding="utf-8"?>\n' + head + "\n" + "\n".join(cases) + "\n</testsuite>\n"


def judge_and_write(
    name: str, prefix: str, summary: Mapping[str, object], checks: list[Check], inconclusive_passes: bool
) -> bool:
    """Judge the checks on a run's summary: a line each on stdout, ``PREFIX_checks.xml``; True when all passed."""
    level = float(finite(summary.get("ci_level")) or 0.95)
    verdicts = [judge(check, summary) for check in checks]
    for verdict in verdicts:
        print(f"{name}: {verdict.line(level)}", flush=True)
    with open(f"{prefix}_checks.xml", "w", encoding="utf-8") as f:
        f.write(junit(name, verdicts, level, inconclusive_passes))
    return not failed(verdicts, inconclusive_passes)
