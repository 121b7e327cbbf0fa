"""The web UI extension: an "LLM" tab, ``GET /llm/stats``, a live charts page and downloads.

Uses Locust's own extension mechanism for its React UI: ``extended_tabs`` and
``extended_tables`` in the template arguments, and ``extended_stats`` added to
the ``/stats/requests`` poll. The tab's table shows each figure now and, as a
sparkline, over time; the "LLM by model" tab a row per model (``--model``'s mix); ``/llm`` draws full charts; ``/metrics`` has the Prometheus
figures (``users/observe/prometheus_export.py``). Every route honours
``--web-login`` and ``--web-base-path``. Nothing here ever shows the API key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request, send_file
from werkzeug.wrappers import Response as WerkzeugResponse

from users.observe.live_stats import MODEL_COLUMNS, LiveStats, charts, model_rows, table_rows, with_legacy_keys
from users.observe.prometheus_export import Exporter
from users.observe.request_log import RequestLog

if TYPE_CHECKING:
    from locust.env import Environment

TAB_KEY = "llm"
MODELS_TAB_KEY = "llm_models"


NO_CSV = "no per-request CSV yet (start Locust with --csv PREFIX)\n"


def install(
    environment: Environment,
    live: LiveStats,
    request_log: RequestLog,
    csv_prefix: str | None,
    exporter: Exporter,
    base: str = "",
) -> None:
    """The LLM tab and the /llm routes on the web UI served under ``base`` (``--web-base-path``)."""
    web_ui = environment.web_ui
    if web_ui is None or web_ui.app is None:
        return
    add_tab(web_ui.template_args, base, csv_prefix)
    routes = Routes(environment, live, request_log, csv_prefix, exporter)
    web_ui.app.register_blueprint(routes.blueprint(base, web_ui.auth_required_if_enabled))

    @web_ui.app.after_request
    def add_llm_tab_rows(response: Response) -> Response:
        if request.path.endswith("/stats/requests") and response.is_json and response.status_code == 200:
            data = response.get_json()
            data["extended_stats"] = [
                {"key": TAB_KEY, "data": table_rows(live)},
                {"key": MODELS_TAB_KEY, "data": model_rows(live)},
            ]
            response.set_data(json.dumps(data))
        return response


def add_tab(template_args: dict[str, Any], base: str, csv_prefix: str | None) -> None:
    """The LLM tab and its links, through Locust's template arguments."""
    template_args["extended_tabs"] = [
        {"title": "LLM", "key": TAB_KEY},
        {"title": "LLM by model", "key": MODELS_TAB_KEY},
    ]
    template_args["extended_tables"] = [
        {
            "key": TAB_KEY,
            "structure": [
                {"key": "metric", "title": "Figure"},
                {"key": "now", "title": "Now (last 10 s)"},
                {"key": "trend", "title": "Over time"},
            ],
        },
        {
            "key": MODELS_TAB_KEY,
            "structure": [
                {"key": "model", "title": "Model"},
                *({"key": c.key, "title": c.label} for c in MODEL_COLUMNS),
            ],
        },
    ]
    links = [
        {"href": f"{base}/llm", "title": "LLM live charts"},
        {"href": f"{base}/llm/stats", "title": "LLM figures (JSON)"},
    ]
    if csv_prefix:
        links += [
            {"href": f"{base}/llm/requests.csv", "title": "Download the per-request CSV"},
            {"href": f"{base}/llm/report.html", "title": "Build and open the HTML report"},
        ]
    template_args["extended_csv_files"] = links


# the web UI's routes (under --web-base-path, behind --web-login when on): rule -> (view, what it serves)
ROUTES = {
    "/llm": ("page", "the LLM live charts page"),
    "/llm/stats": ("stats", "the live figures, levels and history as JSON"),
    "/llm/requests.csv": ("requests_csv", "the per-request CSV so far (needs --csv)"),
    "/llm/report.html": ("report", "builds and serves the HTML report of the run so far (needs --csv)"),
    "/metrics": ("metrics", "the suite's live figures for Prometheus (the llm_loadtest_* series)"),
}


class Routes:
    """The extension's routes, each behind ``--web-login`` when it is on."""

    def __init__(
        self,
        environment: Environment,
        live: LiveStats,
        request_log: RequestLog,
        csv_prefix: str | None,
        exporter: Exporter,
    ) -> None:
        self.environment = environment
        self.live = live
        self.request_log = request_log
        self.csv_prefix = csv_prefix
        self.metrics_app = exporter.wsgi_app()

    def blueprint(self, base: str, guard: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Blueprint:
        bp = Blueprint("llm", __name__, url_prefix=base or None)
        for rule, (view, _what) in ROUTES.items():
            bp.add_url_rule(rule, view, guard(getattr(self, view)))
        return bp

    def stats(self) -> Response:
        """The live figures (old key names too, for one release: live_stats.LEGACY_KEYS)."""
        live, runner = self.live, self.environment.runner
        return jsonify(
            {
                "state": runner.state if runner is not None else None,
                "current": with_legacy_keys(live.current()),
                "history": [with_legacy_keys(point) for point in live.history],
                "levels": [with_legacy_keys(level) for level in live.levels],
                "current_level": live.current_level,
                "models": live.models,
            }
        )

    def metrics(self) -> WerkzeugResponse:
        """The Prometheus figures (also on --metrics-port, which has no login)."""
        return Response.from_app(self.metrics_app, request.environ)

    def page(self) -> Response:
        page = resources.files("users.web").joinpath("charts.html").read_text(encoding="utf-8")
        return Response(page.replace("/*CHARTS*/[]", json.dumps(charts())), mimetype="text/html")

    def requests_csv(self) -> Response:
        path = f"{self.csv_prefix}_requests.csv" if self.csv_prefix else None
        if not path or not os.path.exists(path):
            return Response(NO_CSV, status=404)
        self.request_log.flush()
        return send_file(
            os.path.abspath(path), mimetype="text/csv", as_attachment=True, download_name=os.path.basename(path)
        )

    def report(self) -> Response:
        prefix = self.csv_prefix
        if not prefix or not os.path.exists(f"{prefix}_requests.csv"):
            return Response(NO_CSV, status=404)
        self.request_log.flush()
        proc = subprocess.run(
            [sys.executable, "-m", "reports", prefix], capture_output=True, text=True, timeout=300, cwd=_project_root()
        )
        page = f"{prefix}_report.html"
        if proc.returncode != 0 or not os.path.exists(page):
            return Response(f"report failed: {proc.stderr.strip()[-500:]}\n", status=500)
        return send_file(os.path.abspath(page), mimetype="text/html")


def _project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
