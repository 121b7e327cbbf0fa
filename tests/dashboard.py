"""What the Grafana dashboard (docker/monitoring/grafana-dashboard.json) asks Prometheus for."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.procs import ROOT

DASHBOARD = ROOT / "docker" / "monitoring" / "grafana-dashboard.json"
NAME = re.compile(r"\b(?:llm_loadtest_|vllm:)[A-Za-z0-9_:]*")
PROMQL_WORDS = {"by", "sum", "rate", "max", "histogram_quantile", "label_values", "le"}


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression: the panels' and the template variables'."""
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def metric_names(prefix: str) -> set[str]:
    """The sample names (a histogram's _bucket, a counter's _total) the dashboard uses with this prefix."""
    return {name for expr in queries(load()) for name in NAME.findall(expr) if name.startswith(prefix)}
