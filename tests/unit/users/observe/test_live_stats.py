"""The live figures per model (the web UI's "LLM by model" tab, ``/llm/stats``' ``models``), with a scripted clock."""

from __future__ import annotations

import pytest

from llmclient.schema import Row
from users.observe.live_stats import LiveStats, model_rows


def finished(model: str, start: float, ttft: float, success: bool = True, prompt: int = 100, cached: int = 0):
    return Row(
        start_time=start,
        success=success,
        ttft_s=ttft,
        tpot_s=0.01,
        e2e_s=ttft + 0.1,
        decode_tps=100.0,
        prompt_tokens=prompt,
        cached_tokens=cached,
        output_tokens=10,
        model=model,
    )


def test_each_model_has_its_window_its_counts_and_its_hit_rate():
    live = LiveStats(window_s=10.0)
    live.started = 1000.0
    for i in range(4):
        # TTFT 100..400 ms, half cached
        live.observe(finished("base", 1001.0 + i, 0.1 * (i + 1), cached=50))
    live.observe(finished("sql-lora", 1002.0, 0.5, cached=0))
    live.observe(finished("sql-lora", 1003.0, 0.7, success=False))
    point = live.snapshot(now=1010.0)
    assert point["completed"] == 5 and point["errors"] == 1
    base, lora = live.models["base"], live.models["sql-lora"]
    assert (base["completed"], base["errors"], base["usage_prefix_cache_hit_rate"]) == (4, 0, 0.5)
    assert base["median_ttft_ms"] == pytest.approx(250.0) and base["requests_per_s"] == pytest.approx(0.4)
    assert (lora["completed"], lora["errors"], lora["usage_prefix_cache_hit_rate"]) == (1, 1, 0.0)
    assert lora["median_ttft_ms"] == pytest.approx(500.0) and lora["errors_per_s"] == pytest.approx(0.1)
    rows = model_rows(live)
    assert [r["model"] for r in rows] == ["base", "sql-lora"]
    assert rows[0]["median_ttft_ms"] == "250.0" and rows[0]["usage_prefix_cache_hit_rate"] == "50.0%"
    # the window is empty; the counts since the start stay
    later = live.snapshot(now=1030.0)
    assert later["median_ttft_ms"] is None and live.models["base"]["median_ttft_ms"] is None
    assert live.models["base"]["completed"] == 4 and model_rows(live)[0]["median_ttft_ms"] == "–"
    live.reset()
    assert live.models == {} and model_rows(live) == []
