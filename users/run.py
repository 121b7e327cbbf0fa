"""Run-wide state and Locust wiring: settings, budget, prompts, model, recording.

``register(environment)`` is the one call the locustfile makes from its
``init`` listener; tests call it on an Environment of their own.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict
from typing import Any

import gevent
import locust
from gevent.lock import Semaphore
from locust.runners import MasterRunner, WorkerRunner

from prompts.synthetic import SyntheticPrompts
from users.budget import RequestBudget
from users.http import Target
from users.locust_csv import install_final_csv_write
from users.options import ConfigError, Settings
from users.record import RequestRecord
from users.request_log import RequestLog
from users.server_api import auth_headers, resolve_model
from users.stream import ENDPOINTS, Endpoint

logger = logging.getLogger(__name__)


def fail_fast(message: str, code: int = 2) -> None:
    """Bad input: one line on stderr and a non-zero exit, never a traceback."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


class LLMRun:
    """What every user of one Locust process shares."""

    def __init__(self, environment: Any, settings: Settings, request_log: RequestLog | None = None) -> None:
        self.environment = environment
        self.settings = settings
        self.endpoint: Endpoint = ENDPOINTS[settings.endpoint]
        self.budget = RequestBudget(settings.num_requests, on_complete=self._on_budget_complete)
        self.prompts = SyntheticPrompts(settings.input_tokens, settings.seed)
        self.request_log = request_log
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        self.headers.update(auth_headers(settings.api_key))
        self._model: str | None = settings.model or None
        self._model_lock = Semaphore()

    def model(self, host: str) -> str:
        """The served model, looked up once per process (raises ConfigError)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    self._model = resolve_model(Target.parse(host), self.settings.api_key, self.settings.model)
        return self._model

    def record(self, rec: RequestRecord, elapsed: float) -> None:
        """Report one finished request through Locust's request event (and TTFT/TPOT rows)."""
        fire = self.environment.events.request.fire
        name = self.endpoint.path
        e2e = rec.e2e if rec.e2e is not None else elapsed
        # A request cut off by the end of the test is neither a success nor a server failure:
        # it gets its own row type, so Locust counts it without failing the run.
        fire(
            request_type="CANCELLED" if rec.cancelled else "POST",
            name=name,
            response_time=e2e * 1000.0,
            response_length=rec.output_tokens or 0,
            exception=None if rec.success or rec.cancelled else rec.error,
            context={"llm_record": rec, "llm_endpoint": self.endpoint.name},
        )
        if rec.cancelled:
            return
        if rec.ttft is not None:
            fire(
                request_type="TTFT",
                name=name,
                response_time=rec.ttft * 1000.0,
                response_length=0,
                exception=None,
                context={},
            )
        tpot = rec.tpot
        if tpot is not None and rec.success:
            fire(
                request_type="TPOT",
                name=name,
                response_time=tpot * 1000.0,
                response_length=0,
                exception=None,
                context={},
            )

    def _on_budget_complete(self) -> None:
        logger.info("All %s requests finished", self.budget.total)
        gevent.spawn(stop_run, self.environment)


def stop_run(environment: Any) -> None:
    """End the test as Locust's own --run-time does: quit when headless, else stop."""
    options = environment.parsed_options
    runner = environment.runner
    if runner is None:
        return
    if options is None or getattr(options, "headless", False):
        runner.quit()
        return
    runner.stop()
    autoquit = getattr(options, "autoquit", -1)
    if getattr(options, "autostart", False) and autoquit is not None and autoquit >= 0:
        gevent.sleep(autoquit)
        runner.quit()
        if environment.web_ui:
            environment.web_ui.stop()


def write_run_config(path: str, settings: Settings, options: Any, host: str | None) -> None:
    """The run's configuration for the report, without the API key."""
    config = {k: v for k, v in asdict(settings).items() if k != "api_key"}
    config["api_key_set"] = settings.api_key is not None
    config.update(
        host=host,
        users=getattr(options, "num_users", None),
        spawn_rate=getattr(options, "spawn_rate", None),
        run_time=getattr(options, "run_time", None),
        locust_version=locust.__version__,
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)


def get_run(environment: Any) -> LLMRun:
    run = getattr(environment, "llm_run", None)
    if run is None:  # an Environment built by hand, without register()
        run = LLMRun(environment, Settings.from_options(environment.parsed_options))
        environment.llm_run = run
    return run


def register(environment: Any, preflight: bool = True) -> LLMRun:
    """Validate options, check the server, and wire recording into ``environment``."""
    options = environment.parsed_options
    try:
        settings = Settings.from_options(options)
    except ConfigError as exc:
        fail_fast(str(exc))
    runner = environment.runner
    is_worker = isinstance(runner, WorkerRunner)
    host = environment.host or getattr(options, "host", None)
    if preflight and options is not None and getattr(options, "headless", False) and not is_worker:
        if not host:
            fail_fast("no server given: pass -H http://HOST:PORT (the vLLM server)")
        try:
            Target.parse(host)
            model = resolve_model(Target.parse(host), settings.api_key, settings.model)
        except (ConfigError, ValueError) as exc:
            fail_fast(str(exc), code=1)
        settings = Settings(**{**settings.__dict__, "model": model})
    csv_prefix = getattr(options, "csv_prefix", None) if options is not None else None
    if csv_prefix:
        install_final_csv_write()
        write_run_config(f"{csv_prefix}_config.json", settings, options, host)
    worker = runner.client_id if is_worker else "local"
    request_log = RequestLog(f"{csv_prefix}_requests.csv" if csv_prefix else None, worker=worker, forward=is_worker)
    request_log.register(environment)
    run = LLMRun(environment, settings, request_log)
    environment.llm_run = run
    if isinstance(runner, MasterRunner):
        logger.debug("master: rows arrive in worker reports")
    return run
