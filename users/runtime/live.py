"""A role's live figures: the Prometheus exporter and its port, the LLM tab's refresh, the web UI's routes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import gevent

from users.observe.cpu_watch import CpuWatch
from users.observe.prometheus_export import IN_FLIGHT, LEVEL, QUEUED, STAGE, USERS, Exporter, serve
from users.services.run import LLMRun
from users.web import extension as web_extension
from users.web import login as web_login

if TYPE_CHECKING:
    from locust.env import Environment

logger = logging.getLogger(__name__)

# the LLM tab's figures are taken this often
REFRESH_S = 2.0


class LiveFigures:
    def __init__(
        self,
        environment: Environment,
        run: LLMRun,
        cpu: CpuWatch,
        in_flight: Callable[[], float],
        queued: Callable[[], float],
    ) -> None:
        self.environment = environment
        self.run = run
        self.cpu = cpu
        self.in_flight = in_flight
        self.queued = queued
        context = run.context
        self.exporter = Exporter(
            context.known_model,
            {
                IN_FLIGHT: in_flight,
                QUEUED: queued,
                USERS: self.users_now,
                STAGE: lambda: context.current_stage(time.time()),
                LEVEL: lambda: float((run.live.current_level or {}).get("level", 0)),
            },
        )

    def users_now(self) -> float:
        runner = self.environment.runner
        return float(runner.user_count) if runner is not None else 0.0

    def serve_metrics(self) -> bool:
        """``--metrics-port``: the Prometheus figures on a port of their own; True when served."""
        port = self.run.context.settings.output.metrics_port
        if port is None:
            return False
        web_host = self.run.context.settings.locust.web_host
        host = "" if web_host in ("", "*") else web_host
        try:
            _server, bound = serve(self.exporter, host, port)
        except OSError as exc:
            logger.error("cannot serve --metrics-port %s: %s", port, exc.strerror or exc)
            return False
        logger.info("Prometheus figures at http://%s:%d/metrics", host or "0.0.0.0", bound)
        return True

    def wire_web(self, csv_prefix: str | None) -> None:
        """The LLM tab's figures, refreshed on a timer, and the web UI's routes (local and master)."""

        def loop() -> None:
            while True:
                gevent.sleep(REFRESH_S)
                self.refresh()

        gevent.spawn(loop)
        locust = self.run.context.settings.locust
        if locust.web_port == 0:
            gevent.spawn(self.say_web_port)
        web_login.install(self.environment, locust.web_login, locust.web_base_path)
        web_extension.install(
            self.environment, self.run.live, self.run.request_log, csv_prefix, self.exporter, locust.web_base_path
        )

    def say_web_port(self) -> None:
        """``--web-port 0`` binds a free port: say which, once it is bound (Locust says 0)."""
        web_ui = self.environment.web_ui
        for _ in range(200):
            server = getattr(web_ui, "server", None)
            port = int(getattr(server, "server_port", None) or 0)
            if port:
                logger.info("web UI listening on port %d", port)
                return
            gevent.sleep(0.05)

    def refresh(self) -> None:
        live = self.run.live
        live.update(int(self.in_flight()), int(self.queued()), self.cpu.share_now(), self.run.primer.latest())
        live.snapshot()
