"""#29's traffic against real vLLM on CPU, each on a server of its own: two LoRA adapters built offline (random
weights, rank 8) served beside the tiny model, and the tiny model served as an embedding model (a pooling
runner). The Responses API runs on the session's server (test_seed_on_vllm.py)."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.e2e.test_distributed import free_port
from tests.e2e.test_models import reported_per_model
from tests.e2e.test_sweep import report
from tests.procs import ROOT, read_rows, run_locust
from tests.vllm.conftest import MODEL, VLLMServer

pytestmark = pytest.mark.vllm

MIX = {MODEL: 0.4, "lora-a": 0.3, "lora-b": 0.3}


@pytest.fixture
def lora_server(vllm_setup):
    adapters = [f"lora-{n}={ROOT / '.cache' / f'tiny-lora-{n}'}" for n in "ab"]
    server = VLLMServer(
        "--enable-prefix-caching",
        "--max-num-seqs",
        "16",
        "--enable-lora",
        "--max-lora-rank",
        "8",
        "--max-loras",
        "2",
        "--lora-modules",
        *adapters,
    )
    yield server
    server.stop()


@pytest.fixture
def pooling_server(vllm_setup):
    server = VLLMServer("--runner", "pooling", "--convert", "embed")
    yield server
    server.stop()


@pytest.fixture
def traced_server(vllm_setup):
    """vLLM sending its request spans (OTLP/HTTP) to a port the run will listen on."""
    port = free_port()
    server = VLLMServer(
        "--enable-prefix-caching",
        "--otlp-traces-endpoint",
        f"http://127.0.0.1:{port}/v1/traces",
        env={"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
    )
    yield server, port
    server.stop()


@pytest.mark.timeout(300)
def test_vllms_spans_are_joined_to_the_rows_and_its_ttft_lies_within_the_clients(traced_server, tmp_path):
    server, port = traced_server
    prefix = tmp_path / "spans"
    run = run_locust(
        "--headless",
        "-u",
        "4",
        "-r",
        "4",
        "-n",
        "40",
        "-H",
        server.url,
        "--max-tokens",
        "16",
        "--ignore-eos",
        "--input-tokens",
        "256",
        "--otlp-port",
        str(port),
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=240,
    )
    assert run.returncode == 0, run.output[-3000:]
    assert "Traceback" not in run.output
    rows = read_rows(prefix)
    joined = [r for r in rows if r["server_ttft_s"]]
    assert len(rows) == 40 and len(joined) >= 0.95 * len(rows), len(joined)
    # the server's TTFT (its arrival to its first token) lies within the client's
    for r in joined:
        assert float(r["ttft_s"]) - float(r["server_ttft_s"]) > -20e-6, r["request_id"]
        assert 0 <= float(r["server_queue_s"]) <= float(r["server_ttft_s"]) <= float(r["server_e2e_s"])
    summary = report(prefix)
    assert summary["server_span_requests"] == len(joined)


@pytest.mark.timeout(400)
def test_a_mix_of_lora_adapters_on_vllm_is_reported_per_model(lora_server, tmp_path):
    prefix, n = tmp_path / "lora", 60
    run = run_locust(
        "--headless",
        "-u",
        "4",
        "-r",
        "4",
        "-n",
        str(n),
        "-H",
        lora_server.url,
        "--max-tokens",
        "8",
        "--ignore-eos",
        "--input-tokens",
        "256",
        "--prefix-tokens",
        "192",
        "--model",
        ",".join(f"{m}:{w}" for m, w in MIX.items()),
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=300,
    )
    assert run.returncode == 0, run.output[-3000:]
    assert "Traceback" not in run.output
    rows = read_rows(prefix)
    # vLLM answers a model it does not serve with a 404: every row a success is every adapter served by name
    assert len(rows) == n and all(r["success"] == "true" and int(r["output_tokens"]) == 8 for r in rows)
    counts = Counter(r["model"] for r in rows)
    for model, share in MIX.items():
        # one process: exact to within one request
        assert abs(counts[model] - share * n) <= 1, counts
    running = lora_server.get_text("/metrics")
    # vllm:lora_requests_info saw both adapters run
    assert "lora-a" in running and "lora-b" in running
    # 192 of 256 tokens shared: at most 0.75
    reported_per_model(prefix, counts, 0.3)


@pytest.mark.timeout(400)
def test_embeddings_on_a_vllm_pooling_model_and_chat_refused_before_the_run(pooling_server, tmp_path):
    prefix = tmp_path / "embed"
    run = run_locust(
        "--headless",
        "-u",
        "4",
        "-r",
        "4",
        "-n",
        "40",
        "-H",
        pooling_server.url,
        "--endpoint",
        "embeddings",
        "--input-tokens",
        "200",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=300,
    )
    assert run.returncode == 0, run.output[-3000:]
    assert "Traceback" not in run.output
    rows = read_rows(prefix)
    assert len(rows) == 40 and all(r["success"] == "true" and r["request_id"].startswith("embd-") for r in rows)
    # the prompt sized exactly
    assert all(int(r["prompt_tokens"]) == 200 and r["ttft_s"] == "" for r in rows)
    summary = report(prefix)
    assert summary["mean_e2el_ms"] > 0 and summary["total_input_tokens"] == 40 * 200
    chat = run_locust("--headless", "-u", "1", "-n", "2", "-H", pooling_server.url, timeout=60)
    assert chat.returncode == 1 and "Traceback" not in chat.output
    assert "has no /v1/chat/completions: its first answer was HTTP 404" in chat.output
    assert "it cannot serve --endpoint chat" in chat.output


@pytest.mark.timeout(120)
def test_embeddings_against_a_generative_vllm_are_refused_at_the_first_request(vllm_server):
    run = run_locust("--headless", "-u", "1", "-n", "2", "-H", vllm_server.url, "--endpoint", "embeddings", timeout=60)
    assert run.returncode == 1 and "Traceback" not in run.output
    assert "has no /v1/embeddings: its first answer was HTTP 404" in run.output
    assert "it cannot serve --endpoint embeddings (vLLM serves it for a pooling model" in run.output
