"""The same contract checks against the emulator and against real vLLM, so the emulator cannot drift.

Raw HTTP (urllib), independent of the suite's own client.
"""

from __future__ import annotations

import json
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmclient.server_metrics import HISTOGRAMS, SERIES, parse_scrape
from tests import dashboard

pytestmark = pytest.mark.vllm


@pytest.fixture(params=["emulator", "vllm"])
def server(request, emulator_factory):
    if request.param == "emulator":
        emu = emulator_factory("--step-ms", "5")
        return emu.url, "emulated-llama"
    vllm = request.getfixturevalue("vllm_server")
    return vllm.url, "tiny-llama"


def post(url: str, body: dict) -> bytes:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200
        return r.read()


def events(raw: bytes) -> list:
    out = []
    for block in raw.decode().split("\n\n"):
        if block.startswith("data: "):
            data = block[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_streamed_chat_chunk_shapes(server):
    url, model = server
    raw = post(
        url + "/v1/chat/completions",
        {
            "model": model,
            "messages": [{"role": "user", "content": "the cache keeps prefixes warm " * 20}],
            "max_tokens": 8,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    evs = events(raw)
    assert evs[-1] == "[DONE]"
    usage_chunk = evs[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 8
    assert isinstance(usage_chunk["usage"]["prompt_tokens_details"]["cached_tokens"], int)
    chunks = evs[:-2]
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    assert chunks[0]["object"] == "chat.completion.chunk" and chunks[0]["id"]
    texts = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert 1 <= len(texts) <= 8
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    # the suite's fast path reads text chunks without a JSON parse when they say "finish_reason":null
    middle = [b for b in raw.decode().split("\n\n") if '"content":"' in b and '"finish_reason":null' in b]
    assert middle, raw[:500]
    assert len({c["id"] for c in chunks}) == 1


def test_streamed_responses_event_shapes(server):
    url, model = server
    raw = post(
        url + "/v1/responses",
        {"model": model, "input": "the cache keeps prefixes warm " * 10, "max_output_tokens": 8, "stream": True},
    )
    data = [json.loads(line[6:]) for line in raw.decode().split("\n") if line.startswith("data: ")]
    kinds = [d["type"] for d in data]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    assert data[0]["response"]["id"] and data[-1]["response"]["usage"]["output_tokens"] >= 1
    assert "response.output_text.delta" in kinds
    # the suite's fast path reads an answer delta without a JSON parse: its compact type and text key
    deltas = [line for line in raw.decode().split("\n") if '"response.output_text.delta"' in line]
    assert all('"type":"response.output_text.delta"' in d and '"delta":"' in d for d in deltas), deltas[:2]


def test_streamed_completion_chunk_shapes(server):
    url, model = server
    evs = events(
        post(
            url + "/v1/completions",
            {
                "model": model,
                "prompt": "shared context " * 10,
                "max_tokens": 4,
                "ignore_eos": True,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
    )
    assert evs[-1] == "[DONE]" and evs[-2]["usage"]["completion_tokens"] == 4
    assert all(c["object"] == "text_completion" for c in evs[:-1])
    assert any(c["choices"] and "text" in c["choices"][0] for c in evs[:-2])


def test_tokenize(server):
    url, model = server
    for body in (
        {"model": model, "prompt": "hello there"},
        {"model": model, "messages": [{"role": "user", "content": "hello there"}]},
    ):
        out = json.loads(post(url + "/tokenize", body))
        assert out["count"] == len(out["tokens"]) > 0 and out["max_model_len"] > 0
    chat = json.loads(post(url + "/tokenize", {"model": model, "messages": [{"role": "user", "content": "hello"}]}))
    plain = json.loads(post(url + "/tokenize", {"model": model, "prompt": "hello"}))
    # the chat template adds tokens
    assert chat["count"] > plain["count"]


def test_metrics_names(server):
    url, _ = server
    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    for sample in SERIES.values():
        if sample != "vllm:num_preemptions_total":
            assert sample in names, sample
    assert "vllm:time_to_first_token_seconds_count" in names
    assert "vllm:time_to_first_token_seconds_sum" in names
    # the latency histograms the suite sets the client against, each under one of its names
    _, histograms = parse_scrape(text)
    assert set(histograms) == set(HISTOGRAMS), set(HISTOGRAMS) - set(histograms)


def test_the_dashboard_names_only_series_the_server_exports(server):
    """docker/monitoring/grafana-dashboard.json: each vllm: series it plots, and the model_name label its
    model variable lists, exist on this server (the emulator and real vLLM alike)."""
    url, model = server
    # histograms get samples
    post(url + "/v1/completions", {"model": model, "prompt": "hello", "max_tokens": 4})
    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    names = {s.name for s in samples}
    wanted = dashboard.metric_names("vllm:")
    assert wanted and wanted <= names, sorted(wanted - names)
    assert any(s.name == "vllm:num_requests_running" and "model_name" in s.labels for s in samples)
