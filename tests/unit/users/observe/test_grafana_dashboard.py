"""The Grafana dashboard: valid JSON that Grafana imports, naming only series the suite exports
(the vllm: ones are checked against the emulator and real vLLM in tests/vllm/test_contract.py)."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llmclient.measure import RequestRecord
from llmclient.schema import Row
from tests import dashboard
from users.observe.prometheus_export import FAMILIES, Exporter


def suite_sample_names() -> set[str]:
    exporter = Exporter(lambda: "m", {f: (lambda: 1.0) for f in FAMILIES if f.kind == "gauge"})
    exporter.observe(
        Row.of(
            RequestRecord(
                start_time=1.0,
                success=True,
                ttft_s=0.1,
                itl_s=[0.01],
                e2e_s=0.2,
                prompt_tokens=10,
                cached_tokens=5,
                output_tokens=2,
                queue_s=0.0,
            ),
            "chat",
            "local",
        )
    )
    text = generate_latest(exporter.registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_the_dashboard_names_only_series_the_suite_exports():
    wanted = dashboard.metric_names("llm_loadtest_")
    names = suite_sample_names()
    assert wanted and wanted <= names, sorted(wanted - names)
    # the client's TTFT percentiles are on it
    assert "llm_loadtest_ttft_seconds_bucket" in wanted


def test_the_dashboard_is_importable_with_a_model_and_a_job_variable():
    board = dashboard.load()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert "model_name" in variables["model"]["query"]["query"] and "job" in variables["job"]["query"]["query"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])
        for target in panel["targets"]:
            # each series follows the variables: the suite's by job, the server's (and per-request ones) by model
            if "llm_loadtest_" in target["expr"]:
                assert 'job=~"$job"' in target["expr"], target["expr"]
            if "vllm:" in target["expr"] or "_seconds" in target["expr"] or "_total" in target["expr"]:
                assert 'model_name=~"$model"' in target["expr"], target["expr"]
    # the comparison the dashboard exists for: client and server TTFT in one panel
    assert any(
        "llm_loadtest_ttft_seconds" in " ".join(t["expr"] for t in p["targets"])
        and "vllm:time_to_first_token_seconds" in " ".join(t["expr"] for t in p["targets"])
        for p in board["panels"]
    )
