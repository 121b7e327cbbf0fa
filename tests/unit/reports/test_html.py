"""The report page's words: its title, its numbers, what it leaves out (reports/html.py)."""

from __future__ import annotations

from reports.html import _fmt, safe_config, title_of


def test_numbers_as_a_person_writes_them():
    assert _fmt(29550.123) == "29,550" and _fmt(0.000123456) == "0.0001235" and _fmt(2.955) == "2.955"
    assert _fmt(300.0) == "300" and _fmt(2.5) == "2.5"
    assert _fmt(None) == "–" and _fmt(float("nan")) == "–" and _fmt([]) == "–"
    assert _fmt(False) == "no" and _fmt(True) == "yes" and _fmt(1234567) == "1,234,567"
    # an interval
    assert _fmt([17.2212345678, 19.0700001]) == "17.22–19.07"
    assert _fmt([1, 2, 3]) == "1, 2, 3"


def test_secrets_are_left_out_by_name_not_by_part_of_a_name():
    config = {
        "api_key": "sk-1",
        "headers": {"x": "y"},
        "hf_token": "t",
        "input_tokens": 2048,
        "max_tokens": 512,
        "prefix_tokens": 1536,
        "api_key_set": True,
    }
    assert safe_config(config) == {"input_tokens": 2048, "max_tokens": 512, "prefix_tokens": 1536, "api_key_set": True}


def test_the_title_names_server_model_load_and_date():
    config = {
        "model": "meta-llama/Llama-3.1-70B-Instruct",
        "host": "http://127.0.0.1:8000",
        "users": 128,
        "num_requests": 500,
        "started": "2026-12-07T21:04:11+0000",
    }
    assert title_of("seed", config) == (
        "Load test report: seed, meta-llama/Llama-3.1-70B-Instruct at "
        "http://127.0.0.1:8000, 128 users, 500 requests, 2026-12-07 21:04"
    )
    assert (
        title_of("cap", {"find_capacity": True, "slo": "ttft_ms=300"})
        == "Load test report: cap, capacity search (ttft_ms=300)"
    )
    assert title_of("r", {}) == "Load test report: r"
