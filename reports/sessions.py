"""Sessions' figures: by turn, what the server kept of each session's history, and how long it keeps it.

Pure: rows (and a think-time sweep's levels) in, summary keys out. A later turn's ``ideal_cached_tokens`` is
its history's whole blocks (``prompts.sessions.history_ideal``); the server *kept* a turn's history when it
reported at least that many cached tokens. ``history_kept`` is the share of the ideal tokens it reported
(each turn's cached tokens counted up to its ideal); ``history_kept_turns`` the share of later turns whose
whole history it kept, with a Wilson interval. A think-time sweep's ``retention``: that share at each gap,
and ``retention_gap_s_bracket`` the last gap where it kept at least half and the first where it kept less.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reports.intervals import percentile_ci
from scheduler.levels import wilson

# the share of turns whose history was kept, below which the server "forgot" at that gap
HALF = 0.5


def sessions_summary(rows: pd.DataFrame, levels: pd.DataFrame | None, level: float = 0.95) -> dict:
    """``sessions``, ``by_turn`` (``by_turn_by_host`` with several hosts), the history kept and, for a
    think-time sweep, ``retention``; {} for a run without sessions."""
    if "turn" not in rows or rows["turn"].isna().all():
        return {}
    done = rows[~rows["cancelled"]] if "cancelled" in rows else rows
    ok = done[done["success"] & done["turn"].notna()]
    out: dict = {"sessions": int(done["session_id"].replace("", np.nan).dropna().nunique())}
    out.update(history_kept(ok, level))
    out["by_turn"] = by_turn(ok, level)
    hosts = sorted(h for h in ok["host"].dropna().unique() if h) if "host" in ok else []
    if len(hosts) > 1:
        out["by_turn_by_host"] = {h: by_turn(ok[ok["host"] == h], level) for h in hosts}
    if levels is not None and not levels.empty and (levels["kind"] == "think-time").any():
        out.update(retention(ok, levels, level))
    return out


def _later(ok: pd.DataFrame) -> pd.DataFrame:
    """Later turns whose history's ideal is known."""
    return ok[(ok["turn"] > 1) & ok["ideal_cached_tokens"].notna() & ok["cached_tokens"].notna()]


def history_kept(ok: pd.DataFrame, level: float) -> dict:
    later = _later(ok)
    if later.empty:
        return {}
    ideal = later["ideal_cached_tokens"].to_numpy(float)
    cached = later["cached_tokens"].to_numpy(float)
    kept = cached >= ideal
    low, high = wilson(float(kept.sum()), len(kept), _z(level))
    return {
        "history_kept": float(np.minimum(cached, ideal).sum() / ideal.sum()) if ideal.sum() else math.nan,
        "history_kept_turns": float(kept.mean()),
        "history_kept_turns_ci": [low, high],
    }


def by_turn(ok: pd.DataFrame, level: float) -> list[dict]:
    """One object per turn number: its requests, TTFT p50/p99 (with intervals), TPOT p50, tokens and hit rate."""
    out = []
    for turn, part in ok.groupby("turn"):
        ttft = part["ttft_s"].dropna().to_numpy(float) * 1000.0
        tpot = part["tpot_s"].dropna().to_numpy(float) * 1000.0
        prompt = float(part["prompt_tokens"].sum())
        entry: dict = {"turn": int(turn), "requests": len(part)}
        for q in (50, 99):
            entry[f"ttft_p{q}_ms"] = float(np.percentile(ttft, q)) if ttft.size else None
            entry[f"ttft_p{q}_ms_ci"] = percentile_ci(ttft, q, level)
        entry["tpot_p50_ms"] = float(np.median(tpot)) if tpot.size else None
        entry["prompt_tokens"] = float(part["prompt_tokens"].mean())
        entry["cached_tokens"] = float(part["cached_tokens"].mean())
        ideal = part["ideal_cached_tokens"].dropna()
        entry["ideal_cached_tokens"] = float(ideal.mean()) if len(ideal) else None
        entry["hit_rate"] = float(part["cached_tokens"].sum()) / prompt if prompt else None
        entry.update({k: v for k, v in history_kept(part, level).items() if k.startswith("history_kept")})
        out.append(entry)
    return out


def retention(ok: pd.DataFrame, levels: pd.DataFrame, level: float) -> dict:
    """A think-time sweep: per gap, the later turns whose history the server kept (with Wilson intervals);
    the bracket where it falls below half."""
    later = _later(ok)
    gaps = levels[levels["kind"] == "think-time"]
    found: list[dict] = []
    for gap, part in gaps.groupby("value"):
        names = {str(int(n)) for n in part["level"]}
        turns = later[later["level"].astype(str).isin(names)]
        kept = (turns["cached_tokens"] >= turns["ideal_cached_tokens"]).to_numpy()
        low, high = wilson(float(kept.sum()), len(kept), _z(level))
        share = float(kept.mean()) if len(kept) else math.nan
        found.append({"think_time_s": float(gap), "turns": len(kept), "kept": share, "kept_ci": [low, high]})
    found.sort(key=lambda g: g["think_time_s"])
    return {"retention": found, "retention_gap_s_bracket": retention_bracket(found)}


def retention_bracket(found: list[dict]) -> list[float | None] | None:
    """[the last gap (in increasing order) at which the server kept at least half the histories, the first
    after it at which it kept less] (None: it kept less at the shortest; a None high: never less)."""
    kept_up_to: float | None = None
    for gap in found:
        if math.isnan(gap["kept"]):
            continue
        if gap["kept"] < HALF:
            return [kept_up_to, gap["think_time_s"]] if kept_up_to is not None else [None, gap["think_time_s"]]
        kept_up_to = gap["think_time_s"]
    return [kept_up_to, None] if kept_up_to is not None else None


def _z(level: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(0.5 + level / 2))


def session_sentence(summary: dict) -> str:
    """ "Turn 4's TTFT p50 is X ms against turn 1's Y ms; the server kept Z% of the history it could have"."""
    turns = summary.get("by_turn") or []
    first = next((t for t in turns if t["turn"] == 1), None)
    last = turns[-1] if turns else None
    if first is None or last is None or last is first or first.get("ttft_p50_ms") is None:
        return ""
    text = (
        f"Sessions ({summary.get('sessions')}): turn {last['turn']}'s TTFT p50 is {_ms(last)} against turn 1's "
        f"{_ms(first)}"
    )
    kept = summary.get("history_kept")
    if isinstance(kept, float) and not math.isnan(kept):
        ci = summary.get("history_kept_turns_ci") or [None, None]
        share = summary.get("history_kept_turns") or 0.0
        text += (
            f"; the server kept {kept:.0%} of the history it could have (the whole history on {share:.0%} of later "
            f"turns, 95% CI {ci[0]:.0%}–{ci[1]:.0%})"
            if None not in ci
            else f"; the server kept {kept:.0%} of the history it could have"
        )
    return text + "."


def _ms(turn: dict) -> str:
    value = turn["ttft_p50_ms"]
    ci = turn.get("ttft_p50_ms_ci") or [None, None]
    inside = f"95% CI {ci[0]:.3g}–{ci[1]:.3g}" if None not in ci else "too few for an interval"
    return f"{value:.3g} ms ({inside}, {turn['requests']} requests)"


def retention_sentence(summary: dict) -> str:
    bracket = summary.get("retention_gap_s_bracket")
    if "retention" not in summary:
        return ""
    if not bracket:
        return "Retention: the server kept fewer than half of the histories even at the shortest think time."
    low, high = bracket
    if high is None:
        return f"Retention: the server kept at least half of the histories at every think time up to {low:g} s."
    if low is None:
        return f"Retention: the server kept fewer than half of the histories already at {high:g} s."
    return (
        f"Retention: the server kept at least half of the sessions' histories after {low:g} s of think time, "
        f"and fewer than half after {high:g} s: it forgets a session between {low:g} and {high:g} s."
    )
