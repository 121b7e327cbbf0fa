"""Sessions' figures from rows: by turn, the history kept, and a think-time sweep's retention answer."""

from __future__ import annotations

import pandas as pd

from reports.answers import answers
from reports.sessions import retention_bracket, sessions_summary


def session_rows(kept_by_level: dict[str, list[bool]]) -> pd.DataFrame:
    """Two-turn sessions: per level, whether each one's second turn found its history (192 of 200 tokens)."""
    out = []
    for level, kept in kept_by_level.items():
        for i, hit in enumerate(kept):
            sid = f"s{level}-{i}"
            common = {"session_id": sid, "level": level, "success": True, "cancelled": False, "host": "h"}
            out.append({**common, "turn": 1, "prompt_tokens": 200, "cached_tokens": 0, "ideal_cached_tokens": None})
            out.append(
                {
                    **common,
                    "turn": 2,
                    "prompt_tokens": 276,
                    "cached_tokens": 192 if hit else 0,
                    "ideal_cached_tokens": 192,
                }
            )
    rows = pd.DataFrame(out)
    rows["ttft_s"] = [0.010 if t == 1 else 0.004 for t in rows["turn"]]
    rows["tpot_s"] = 0.005
    return rows


def levels_of(gaps: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"level": range(1, len(gaps) + 1), "kind": "think-time", "value": gaps})


def test_by_turn_says_what_each_turn_got_and_the_history_the_server_kept():
    summary = sessions_summary(session_rows({"": [True, True, True, False]}), None)
    assert summary["sessions"] == 4
    first, second = summary["by_turn"]
    assert (first["turn"], first["requests"], first["hit_rate"], first["ideal_cached_tokens"]) == (1, 4, 0.0, None)
    assert second["cached_tokens"] == 144 and second["ideal_cached_tokens"] == 192
    assert second["ttft_p50_ms"] == 4.0 and first["ttft_p50_ms"] == 10.0
    assert summary["history_kept"] == 0.75 and summary["history_kept_turns"] == 0.75
    low, high = summary["history_kept_turns_ci"]
    assert low < 0.75 < high
    (sentence,) = [s for s in answers(summary) if s.startswith("Sessions")]
    assert "turn 2's TTFT p50 is 4 ms" in sentence and "turn 1's 10 ms" in sentence
    assert "kept 75% of the history it could have" in sentence


def test_a_think_time_sweep_finds_where_the_server_forgets():
    rows = session_rows({"1": [True] * 20, "2": [True] * 19 + [False], "3": [False] * 18 + [True] * 2})
    summary = sessions_summary(rows, levels_of([0.5, 2.0, 8.0]))
    assert [g["think_time_s"] for g in summary["retention"]] == [0.5, 2.0, 8.0]
    assert [g["kept"] for g in summary["retention"]] == [1.0, 0.95, 0.1]
    assert summary["retention_gap_s_bracket"] == [2.0, 8.0]
    (sentence,) = [s for s in answers(summary) if s.startswith("Retention")]
    assert "between 2 and 8 s" in sentence


def test_the_bracket_when_the_server_never_or_always_forgets():
    def gaps(*kept: float) -> list[dict]:
        return [{"think_time_s": float(i + 1), "kept": k} for i, k in enumerate(kept)]

    assert retention_bracket(gaps(0.9, 0.8)) == [2.0, None]
    assert retention_bracket(gaps(0.2, 0.1)) == [None, 1.0]
    assert retention_bracket([]) is None


def test_a_run_without_sessions_has_no_session_keys():
    rows = session_rows({"": [True]}).drop(columns=["turn"])
    assert sessions_summary(rows, None) == {}
