"""The web UI extension: an "LLM" tab, ``GET /llm/stats``, a live charts page and downloads.

Uses Locust's own extension mechanism for its React UI: ``extended_tabs`` and
``extended_tables`` in the template arguments, and ``extended_stats`` added to
the ``/stats/requests`` poll. The tab's table shows each figure now and, as a
sparkline, over time; ``/llm`` draws full charts; ``/metrics`` has the Prometheus
figures (``users/prometheus_export.py``). Every route honours
``--web-login`` and ``--web-base-path``. Nothing here ever shows the API key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from typing import TYPE_CHECKING

from flask import Blueprint, Response, jsonify, request, send_file
from werkzeug.wrappers import Response as WerkzeugResponse

from users.live_stats import LiveStats, table_rows
from users.prometheus_export import Exporter
from users.request_log import RequestLog

if TYPE_CHECKING:
    from locust.env import Environment

TAB_KEY = "llm"


def install(environment: Environment, live: LiveStats, request_log: RequestLog, csv_prefix: str | None,
            exporter: Exporter) -> None:  # fmt: skip
    web_ui = environment.web_ui
    if web_ui is None or web_ui.app is None:
        return
    app = web_ui.app
    base = getattr(environment.parsed_options, "web_base_path", "") or ""
    web_ui.template_args["extended_tabs"] = [{"title": "LLM", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [{
        "key": TAB_KEY,
        "structure": [{"key": "metric", "title": "Figure"}, {"key": "now", "title": "Now (last 10 s)"},
                      {"key": "trend", "title": "Over time"}],
    }]  # fmt: skip
    links = [
        {"href": f"{base}/llm", "title": "LLM live charts"},
        {"href": f"{base}/llm/stats", "title": "LLM figures (JSON)"},
    ]
    if csv_prefix:
        links += [{"href": f"{base}/llm/requests.csv", "title": "Download the per-request CSV"},
                  {"href": f"{base}/llm/report.html", "title": "Build and open the HTML report"}]  # fmt: skip
    web_ui.template_args["extended_csv_files"] = links

    bp = Blueprint("llm", __name__, url_prefix=base or None)
    guard = web_ui.auth_required_if_enabled

    @bp.route("/llm/stats")
    @guard
    def llm_stats() -> Response:
        state = environment.runner.state if environment.runner is not None else None
        return jsonify({"state": state, "current": live.current(), "history": list(live.history),
                        "levels": live.levels, "current_level": live.current_level})  # fmt: skip

    metrics_app = exporter.wsgi_app()

    @bp.route("/metrics")
    @guard
    def metrics() -> WerkzeugResponse:
        """The Prometheus figures (also on --metrics-port, which has no login)."""
        return Response.from_app(metrics_app, request.environ)

    @bp.route("/llm")
    @guard
    def llm_page() -> Response:
        page = resources.files("users.web").joinpath("charts.html").read_text(encoding="utf-8")
        return Response(page, mimetype="text/html")

    @bp.route("/llm/requests.csv")
    @guard
    def llm_requests_csv() -> Response:
        path = f"{csv_prefix}_requests.csv" if csv_prefix else None
        if not path or not os.path.exists(path):
            return Response("no per-request CSV yet (start Locust with --csv PREFIX)\n", status=404)
        request_log.flush()
        return send_file(os.path.abspath(path), mimetype="text/csv", as_attachment=True,
                         download_name=os.path.basename(path))  # fmt: skip

    @bp.route("/llm/report.html")
    @guard
    def llm_report() -> Response:
        if not csv_prefix or not os.path.exists(f"{csv_prefix}_requests.csv"):
            return Response("no per-request CSV yet (start Locust with --csv PREFIX)\n", status=404)
        request_log.flush()
        proc = subprocess.run([sys.executable, "-m", "reports", csv_prefix], capture_output=True, text=True,
                              timeout=300, cwd=_project_root())  # fmt: skip
        page = f"{csv_prefix}_report.html"
        if proc.returncode != 0 or not os.path.exists(page):
            return Response(f"report failed: {proc.stderr.strip()[-500:]}\n", status=500)
        return send_file(os.path.abspath(page), mimetype="text/html")

    app.register_blueprint(bp)

    @app.after_request
    def add_llm_tab_rows(response: Response) -> Response:
        if request.path.endswith("/stats/requests") and response.is_json and response.status_code == 200:
            data = response.get_json()
            data["extended_stats"] = [{"key": TAB_KEY, "data": table_rows(live)}]
            response.set_data(json.dumps(data))
        return response


def _project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
