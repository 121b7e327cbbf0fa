"""Several models in one run (--model NAME:WEIGHT,…): LoRA adapters served beside the base model by the
emulator, each request's model in proportion, every row's model the one the server says it served, the
summary and a check per model; a name the server lacks is one line before the run."""

from __future__ import annotations

import base64
import json
from collections import Counter

import pytest

from prompts.images import image_url
from tests.e2e.test_sweep import report
from tests.procs import read_rows, run_locust

MIX = {"emulated-llama": 0.5, "sql-lora": 0.3, "chat-lora": 0.2}


@pytest.mark.timeout(180)
def test_a_weighted_mix_of_adapters_lands_on_its_weights_and_is_reported_per_model(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "5", "--lora-modules", "sql-lora=/a/sql", "chat-lora=/a/chat")
    prefix = tmp_path / "mix"
    n = 200
    run = run_locust(
        "--headless",
        "-u",
        "8",
        "-r",
        "8",
        "-n",
        str(n),
        "-H",
        emu.url,
        "--max-tokens",
        "8",
        "--input-tokens",
        "256",
        "--prefix-tokens",
        "192",
        "--model",
        ",".join(f"{m}:{w}" for m, w in MIX.items()),
        "--csv",
        str(prefix),
        "--only-summary",
        "--check",
        "models.sql-lora.completed>=1",
    )
    assert run.returncode == 0, run.output[-3000:]
    assert "Traceback" not in run.output
    rows = read_rows(prefix)
    assert len(rows) == n and all(r["success"] == "true" for r in rows)
    counts = Counter(r["model"] for r in rows)
    for model, share in MIX.items():
        # one process: exact to within one request
        assert abs(counts[model] - share * n) <= 1, counts
    served = {t["id"]: t["model"] for t in emu.truth() if t.get("id")}
    # each row says the model that served it
    assert all(served[r["request_id"]] == r["model"] for r in rows)
    assert "mix: check models.sql-lora.completed>=1" in run.output
    reported_per_model(prefix, counts, 0.5)


def reported_per_model(prefix, counts: Counter, hit_rate_above: float) -> None:
    """The report's figures per model: each model's requests, its own warm cache, its chart."""
    summary = report(prefix)
    assert {m: s["completed"] for m, s in summary["models"].items()} == dict(counts)
    # each adapter's cache blocks are its own: each warms apart
    for figures in summary["models"].values():
        assert figures["usage_prefix_cache_hit_rate"] > hit_rate_above and figures["mean_ttft_ms"] > 0
    assert prefix.with_name(f"{prefix.name}_models_cdf.png").stat().st_size > 10_000


@pytest.mark.timeout(60)
def test_a_model_the_server_lacks_is_one_line_before_the_run(emulator_factory):
    emu = emulator_factory("--lora-modules", "sql-lora")
    run = run_locust("--headless", "-u", "1", "-n", "5", "-H", emu.url, "--model", "sql-lora:0.5,nope:0.5", timeout=50)
    assert run.returncode == 1
    assert "model 'nope' is not served by" in run.output and "it serves: emulated-llama, sql-lora" in run.output
    assert "Traceback" not in run.output and emu.stats()["by_path"].get("/v1/chat/completions", 0) == 0


@pytest.mark.timeout(60)
def test_an_endpoint_the_server_lacks_is_one_line_at_the_first_request(emulator_factory, tmp_path):
    # as vLLM serving a generative model: no /v1/embeddings
    emu = emulator_factory("--runner", "generate")
    prefix = tmp_path / "none"
    run = run_locust(
        "--headless", "-u", "1", "-n", "5", "-H", emu.url, "--endpoint", "embeddings", "--csv", str(prefix), timeout=50
    )
    assert run.returncode == 1, run.output[-2000:]
    said = [line for line in run.output.splitlines() if "has no /v1/embeddings" in line]
    assert len(said) == 1 and "its first answer was HTTP 404" in said[0], run.output[-2000:]
    assert "it cannot serve --endpoint embeddings (vLLM serves it for a pooling model" in said[0]
    by_path = emu.stats()["by_path"]
    assert "Traceback" not in run.output and (by_path["/v1/models"], by_path["GET /v1/embeddings"]) == (1, 1)
    # the GET's 404 proved nothing; the first POST's 404 did (the user may have sent a few more meanwhile:
    # rows are recorded when the process is idle), and every request sent has its row
    assert 1 <= by_path["/v1/embeddings"] == len(read_rows(prefix)) <= 5


@pytest.mark.timeout(60)
def test_a_server_that_answers_404_to_a_get_of_a_post_route_is_not_refused(emulator_factory, tmp_path):
    # as Go's gin answers
    emu = emulator_factory("--wrong-method-status", "404", "--step-ms", "2", "--eos-prob", "0")
    prefix = tmp_path / "gin"
    run = run_locust(
        "--headless",
        "-u",
        "2",
        "-r",
        "2",
        "-n",
        "6",
        "-H",
        emu.url,
        "--max-tokens",
        "4",
        "--input-tokens",
        "32",
        "--csv",
        str(prefix),
        "--only-summary",
        timeout=50,
    )
    assert run.returncode == 0, run.output[-2000:]
    by_path = emu.stats()["by_path"]
    assert by_path["GET /v1/chat/completions"] == 1 and by_path["/v1/chat/completions"] == 6
    assert all(r["success"] == "true" for r in read_rows(prefix))


@pytest.mark.timeout(120)
def test_a_reasoning_models_answer_is_timed_against_the_emulators_truth(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "10", "--reasoning-tokens", "12")
    prefix = tmp_path / "think"
    run = run_locust(
        "--headless",
        "-u",
        "4",
        "-r",
        "4",
        "-n",
        "40",
        "-H",
        emu.url,
        "--max-tokens",
        "20",
        "--ignore-eos",
        "--input-tokens",
        "128",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 0, run.output[-3000:]
    rows = read_rows(prefix)
    truth = {t["id"]: t for t in emu.truth() if t.get("id")}
    assert len(rows) == 40
    for r in rows:
        told = truth[r["request_id"]]
        # counted from the stream
        assert int(r["reasoning_tokens"]) == 12 and int(r["output_tokens"]) == 20
        # the client's answer TTFT runs from before its send to the token's arrival, the emulator's from the
        # request's arrival to just before its write: the client's spans the emulator's (both clocks are the
        # one monotonic clock; kernel stamps convert within 10 µs each)
        assert float(r["answer_ttft_s"]) - told["answer_ttft_s"] > -20e-6, r["request_id"]
        # 12 reasoning steps of 10 ms at least
        assert float(r["answer_ttft_s"]) > float(r["ttft_s"]) + 0.1
    summary = report(prefix)
    assert summary["total_reasoning_tokens"] == 40 * 12
    true_mean = 1000 * sum(truth[r["request_id"]]["answer_ttft_s"] for r in rows) / len(rows)
    # as test_report holds TTFT
    assert summary["mean_answer_ttft_ms"] == pytest.approx(true_mean, abs=5.0)
    assert summary["mean_answer_tpot_ms"] > 0


@pytest.mark.timeout(120)
def test_an_embeddings_run_has_exact_rows_and_its_latency_is_the_emulators(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "20", "--prefill-ms-per-token", "0.05")
    prefix = tmp_path / "embed"
    run = run_locust(
        "--headless",
        "-u",
        "4",
        "-r",
        "4",
        "-n",
        "60",
        "-H",
        emu.url,
        "--endpoint",
        "embeddings",
        "--input-tokens",
        "200",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 0, run.output[-3000:]
    assert "Traceback" not in run.output
    rows = read_rows(prefix)
    truth = {t["id"]: t for t in emu.truth() if t.get("id")}
    assert len(rows) == len(truth) == 60 and all(r["success"] == "true" for r in rows)
    for r in rows:
        told = truth[r["request_id"]]
        assert r["endpoint"] == "embeddings" and r["ttft_s"] == "" and r["itl_s"] == ""
        # the usage: the prompt sized exactly
        assert int(r["prompt_tokens"]) == told["prompt_tokens"] == 200
        # the client's latency spans the emulator's: from before the send to the answer's last byte
        assert float(r["e2e_s"]) - told["e2e_s"] > -20e-6
    summary = report(prefix)
    true_mean = 1000 * sum(t["e2e_s"] for t in truth.values()) / len(truth)
    assert summary["mean_e2el_ms"] == pytest.approx(true_mean, abs=5.0)
    assert summary["mean_ttft_ms"] is None and summary["total_input_tokens"] == 60 * 200
    assert "no token streams back" in (tmp_path / "embed_report.html").read_text()
    batched = run_locust(
        "--headless",
        "-u",
        "2",
        "-r",
        "2",
        "-n",
        "10",
        "-H",
        emu.url,
        "--endpoint",
        "embeddings",
        "--input-tokens",
        "200",
        "--embed-batch",
        "4",
        "--csv",
        str(tmp_path / "batch"),
        "--only-summary",
    )
    assert batched.returncode == 0, batched.output[-3000:]
    # -n counts requests, each embedding four prompts
    rows = read_rows(tmp_path / "batch")
    truth = {t["id"]: t for t in emu.truth() if t.get("id")}
    assert len(rows) == 10 and all(
        int(r["prompt_tokens"]) == truth[r["request_id"]]["prompt_tokens"] == 800 for r in rows
    )


@pytest.mark.timeout(120)
def test_a_responses_api_run_is_measured_as_chat_is(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "10", "--reasoning-tokens", "4")
    prefix = tmp_path / "resp"
    run = run_locust(
        "--headless",
        "-u",
        "4",
        "-r",
        "4",
        "-n",
        "40",
        "-H",
        emu.url,
        "--endpoint",
        "/v1/responses",
        "--max-tokens",
        "16",
        "--ignore-eos",
        "--input-tokens",
        "300",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 0, run.output[-3000:]
    assert "Traceback" not in run.output
    rows = read_rows(prefix)
    truth = {t["id"]: t for t in emu.truth() if t.get("id")}
    assert len(rows) == len(truth) == 40 and all(r["success"] == "true" for r in rows)
    for r in rows:
        # the id of its response.created event
        told = truth[r["request_id"]]
        assert r["endpoint"] == "responses" and r["usage_source"] == "server"
        # sized with the chat template
        assert int(r["prompt_tokens"]) == told["prompt_tokens"] == 300
        assert int(r["output_tokens"]) == 16 and int(r["reasoning_tokens"]) == 4
        for mine, theirs in (("ttft_s", "ttft_s"), ("answer_ttft_s", "answer_ttft_s"), ("e2e_s", "e2e_s")):
            # the client's spans the server's
            assert float(r[mine]) - told[theirs] > -20e-6, (mine, r["request_id"])
        assert len(r["itl_s"].split()) == 15


@pytest.mark.timeout(120)
def test_images_in_the_prompt_cost_their_tokens_and_shared_ones_hit_the_cache(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "5", "--image-tokens", "100")
    runs = {}
    for share in (False, True):
        prefix = tmp_path / f"img{int(share)}"
        run = run_locust(
            "--headless",
            "-u",
            "2",
            "-r",
            "2",
            "-n",
            "20",
            "-H",
            emu.url,
            "--max-tokens",
            "4",
            "--input-tokens",
            "200",
            "--images",
            "2",
            "--image-size",
            "64x48",
            "--seed",
            str(int(share)),
            *(["--image-share"] if share else []),
            "--csv",
            str(prefix),
            "--only-summary",
        )
        assert run.returncode == 0, run.output[-3000:]
        runs[share] = read_rows(prefix)
    truth = {t["id"]: t for t in emu.truth() if t.get("id")}
    for rows in runs.values():
        assert len(rows) == 20 and all(r["success"] == "true" and r["image_count"] == "2" for r in rows)
        # the text sized to --input-tokens, each image's 100 tokens on top, as the server counted
        for r in rows:
            assert int(r["prompt_tokens"]) == truth[r["request_id"]]["prompt_tokens"] == 200 + 2 * 100
    # distinct images: only the template's head is ever shared; shared images: a 200-token prefix after the first
    assert max(int(r["cached_tokens"]) for r in runs[False]) < 32
    assert sorted(int(r["cached_tokens"]) for r in runs[True])[10] >= 192


@pytest.mark.timeout(120)
def test_an_image_datasets_files_and_urls_go_with_their_prompts(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "5", "--image-tokens", "100")
    # image files beside the dataset
    for name, key in (("a.png", 1), ("b.jpg", 2)):
        url = image_url((key,), (32, 24), "png" if name.endswith("png") else "jpeg")
        (tmp_path / name).write_bytes(base64.b64decode(url.split(",", 1)[1]))
    parts = [{"type": "image_url", "image_url": {"url": "https://example.com/c.png"}}, {"type": "text", "text": "Say."}]
    records = [
        {"prompt": "Say.", "images": []},
        {"prompt": "Say.", "image": "a.png"},
        {"prompt": "Say.", "images": ["a.png", "b.jpg"]},
        {"messages": [{"role": "user", "content": parts}]},
    ]
    (tmp_path / "vision.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    prefix = tmp_path / "vision"
    run = run_locust(
        "--headless",
        "-u",
        "2",
        "-r",
        "2",
        "-n",
        "16",
        "-H",
        emu.url,
        "--max-tokens",
        "4",
        "--dataset",
        str(tmp_path / "vision.jsonl"),
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 0, run.output[-3000:]
    rows = read_rows(prefix)
    truth = {t["id"]: t for t in emu.truth() if t.get("id")}
    assert len(rows) == 16 and all(r["success"] == "true" for r in rows)
    # the URL's record is one of "1"
    assert Counter(r["image_count"] for r in rows) == {"0": 4, "1": 8, "2": 4}
    base = min(int(r["prompt_tokens"]) for r in rows)
    # the same text, and each image's 100 tokens on top, as the server counted them
    for r in rows:
        assert int(r["prompt_tokens"]) == truth[r["request_id"]]["prompt_tokens"] == base + 100 * int(r["image_count"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "Say.", "images": ["nope.png"]}))
    refused = run_locust("--headless", "-u", "1", "-n", "2", "-H", emu.url, "--dataset", str(bad), timeout=50)
    assert refused.returncode == 1 and "Traceback" not in refused.output
    assert f"--dataset {bad}: image 'nope.png': No such file or directory" in refused.output


@pytest.mark.timeout(60)
def test_bad_image_options_are_one_line(emulator_factory):
    emu = emulator_factory()
    for args, message in (
        (("--images", "1", "--image-size", "0x10"), "--image-size takes WIDTHxHEIGHT"),
        (("--images", "1", "--endpoint", "completions"), "--images needs --endpoint chat or responses"),
    ):
        run = run_locust("--headless", "-u", "1", "-n", "2", "-H", emu.url, *args, timeout=50)
        assert run.returncode == 2 and message in run.output and "Traceback" not in run.output, run.output[-2000:]
