"""Run-wide state and Locust wiring: settings, budget, prompts, model, recording, server state.

``register(environment)`` is the one call the locustfile makes from its
``init`` listener; tests call it on an Environment of their own. Roles:

- local (one process): everything;
- master: checks the server, resets/primes the cache, scrapes ``/metrics``,
  writes the per-request CSV from the workers' reports; sends no load;
- worker: builds its prompts and sends the load; ships its rows to the master.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from dataclasses import asdict, replace
from typing import Any

import gevent
import locust
from gevent.lock import Semaphore
from gevent.pool import Pool
from locust.runners import STATE_INIT, STATE_STOPPED, STATE_STOPPING, MasterRunner, WorkerRunner

from prompts.dataset import DatasetPrompts, load_dataset
from prompts.source import Prompt, PromptError, PromptSource
from prompts.synthetic import SharedPrefixPrompts
from prompts.tokenizer import LocalTokenizer, ServerTokenizer, TokenCounter
from users.backlog import RecordBacklog
from users.budget import RequestBudget
from users.cache_control import reset_prefix_cache, warm_up
from users.distributed import GRANT, GRANT_REQUEST, MasterCoordinator, WorkerBudget
from users.fail_ratio import FailRatioGuard
from users.http import Target, configure_tls, keep_kernel_stamping_on
from users.live_stats import LiveStats
from users.locust_fixes import install_cached_default_args, install_final_csv_write
from users.options import ConfigError, Settings
from users.prompt_pool import PromptPool
from users.reactor import StreamReactor
from users.record import RequestRecord
from users.request_log import COLUMNS, ROWS_MESSAGE, RequestLog
from users.server_api import auth_headers, resolve_model
from users.server_metrics import ServerMetrics
from users.stream import ENDPOINTS, Endpoint
from users.web import extension as web_extension
from users.web import login as web_login

logger = logging.getLogger(__name__)

PREBUILD_MAX = 4096  # prompts built before the run at most; more are built in the background


def fail_fast(message: str, code: int = 2) -> None:
    """Bad input: one line on stderr and a non-zero exit, never a traceback."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


def role_of(runner: Any) -> str:
    if isinstance(runner, MasterRunner):
        return "master"
    if isinstance(runner, WorkerRunner):
        return "worker"
    return "local"


class LLMRun:
    """What every user of one Locust process shares."""

    def __init__(
        self, environment: Any, settings: Settings, request_log: RequestLog | None = None, role: str = "local"
    ) -> None:
        self.environment = environment
        self.role = role
        self.request_log = request_log
        self.budget: RequestBudget | WorkerBudget = RequestBudget(
            settings.num_requests, on_complete=self._on_budget_complete
        )
        self.coordinator: MasterCoordinator | None = None
        self.reactor = StreamReactor()
        self.backlog: RecordBacklog[tuple[RequestRecord, float]] = RecordBacklog(self._record_and_count)
        self.in_flight = 0  # requests this process has sent and not finished
        self.live = LiveStats()
        self._worker_in_flight: dict[str, int] = {}
        self.fail_guard: FailRatioGuard | None = None
        self.prompts: PromptSource | None = None
        self.metrics: ServerMetrics | None = None
        self._metrics_loop: gevent.Greenlet | None = None
        self._prepared_for: tuple | None = None
        self._model_lock = Semaphore()
        self.apply_settings(settings)

    def apply_settings(self, settings: Settings) -> None:
        self.settings = settings
        configure_tls(settings.ca_bundle, settings.insecure)
        if settings.kernel_timestamps:
            keep_kernel_stamping_on()
        self.endpoint: Endpoint = ENDPOINTS[settings.endpoint]
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        self.headers.update(auth_headers(settings.api_key))
        self._model: str | None = settings.model or None

    @property
    def stream_id(self) -> str:
        """Distinguishes the prompt suffixes of different worker processes."""
        runner = self.environment.runner
        index = getattr(runner, "worker_index", None)
        return f"w{index}" if self.role == "worker" and index is not None else "0"

    # -- the model ----------------------------------------------------------------------
    def model(self, host: str) -> str:
        """The served model, looked up once per process (raises ConfigError)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    self._model = resolve_model(Target.parse(host), self.settings.api_key, self.settings.model)
        return self._model

    # -- prompts --------------------------------------------------------------------------
    def token_counter(self, host: str) -> TokenCounter:
        s = self.settings
        if s.tokenizer:
            return LocalTokenizer(s.tokenizer)
        return ServerTokenizer(Target.parse(host), self.model(host), auth_headers(s.api_key))

    def build_prompt_source(self, host: str, stream: str) -> PromptSource:
        s = self.settings
        if s.dataset:
            return DatasetPrompts(load_dataset(s.dataset), s.seed, stream)
        counter = self.token_counter(host)
        return SharedPrefixPrompts(
            counter,
            chat=self.endpoint.name == "chat",
            input_tokens=s.input_tokens,
            prefix_tokens=s.prefix_tokens,
            prefix_groups=s.prefix_groups,
            input_tokens_stddev=s.input_tokens_stddev,
            seed=s.seed,
            stream=stream,
        )

    def prepare_prompts(self, host: str) -> None:
        """Build the prompt source and fill its pool before users start (raises PromptError/ConfigError)."""
        key = (host, self.settings)
        if self._prepared_for == key and self.prompts is not None:
            return
        source = self.build_prompt_source(host, self.stream_id)
        if isinstance(source, DatasetPrompts):
            self.prompts = source
        else:
            n = self.settings.num_requests
            # no process issues more than -n requests (a worker's share is at most the global total)
            pool = PromptPool(source, min(n, PREBUILD_MAX) if n else 256, total=n)
            started = time.perf_counter()
            pool.fill()
            logger.info("built %d prompts in %.1f s", pool.built, time.perf_counter() - started)
            self.prompts = pool
        self._prepared_for = key

    def next_prompt(self) -> Prompt:
        assert self.prompts is not None, "prompts are prepared at test start"
        return self.prompts.next_prompt()

    # -- server state before and during the run -------------------------------------------------
    def prime_server(self, host: str) -> None:
        """Reset and warm the prefix cache as asked, then start scraping /metrics."""
        s = self.settings
        target = Target.parse(host)
        headers = auth_headers(s.api_key)
        if s.reset_prefix_cache:
            reset_prefix_cache(target, headers)
        if s.warmup:
            contents = self.warmup_prompts(host)
            pool = Pool(16)
            ok = warm_up(
                target,
                self.endpoint,
                self.model(host),
                self.headers,
                contents,
                run_all=lambda jobs: gevent.joinall([pool.spawn(j) for j in jobs]),
            )
            logger.info("warm-up: %d of %d unmeasured requests succeeded", ok, len(contents))
        if s.metrics_interval > 0:
            prefix = getattr(self.environment.parsed_options, "csv_prefix", None)
            self.metrics = ServerMetrics(target, headers, f"{prefix}_server_metrics.csv" if prefix else None)
            self.metrics.scrape()
            self._metrics_loop = gevent.spawn(self._scrape_every, s.metrics_interval)

    def warmup_prompts(self, host: str) -> list[str]:
        s = self.settings
        source = self.build_prompt_source(host, "warmup")
        if isinstance(source, SharedPrefixPrompts):
            return [f"{prefix}Warm-up {g}-{k}." for g, prefix in enumerate(source.prefixes) for k in range(s.warmup)]
        return [source.next_prompt().content for _ in range(s.warmup)]

    def _scrape_every(self, interval: float) -> None:
        while self.metrics is not None and self.metrics.available:
            gevent.sleep(interval)
            if self.metrics is not None:
                self.metrics.scrape()

    def stop_metrics(self) -> None:
        if self._metrics_loop is not None:
            self._metrics_loop.kill(block=True)
            self._metrics_loop = None
        if self.metrics is not None:
            self.metrics.scrape()  # the end of the run
            self.metrics.close()

    # -- recording ----------------------------------------------------------------------------
    def record_soon(self, rec: RequestRecord, elapsed: float) -> None:
        """Record a finished request, and count it against the budget, when the process is idle
        (see users/backlog.py); ``backlog.drain`` records the rest when the test stops."""
        self.backlog.add((rec, elapsed))

    def _record_and_count(self, item: tuple[RequestRecord, float]) -> None:
        self.record(*item)
        self.budget.finish()

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

    # -- Locust events ------------------------------------------------------------------------------
    def on_test_start(self, environment: Any, **_kw: object) -> None:
        host = environment.host
        if not host:
            logger.error("no host: set -H http://HOST:PORT or the host field of the web UI")
            return
        self.live.reset()
        self._worker_in_flight.clear()
        try:
            if self.role == "worker":  # the master's options arrived with the spawn message
                self.apply_settings(Settings.from_options(environment.parsed_options))
                runner = environment.runner
                self.budget = (
                    WorkerBudget(lambda kind, data: runner.send_message(kind, data))
                    if self.settings.num_requests
                    else RequestBudget(None)
                )
            elif self.role == "local":
                self.budget = RequestBudget(self.settings.num_requests, on_complete=self._on_budget_complete)
            else:  # master: a new ledger for every test
                if self.coordinator is not None:
                    self.coordinator.stop()
                self.coordinator = MasterCoordinator(
                    environment, self.settings.num_requests, on_complete=self._on_budget_complete
                )
                self.request_log.on_rows = self.coordinator.on_rows
                self.coordinator.start()
            if self.role in ("local", "worker"):
                self.prepare_prompts(host)
            if self.role in ("local", "master"):
                self.prime_server(host)
                if self.settings.max_fail_ratio is not None:
                    self.fail_guard = FailRatioGuard(
                        environment.stats,
                        self.endpoint.path,
                        self.settings.max_fail_ratio,
                        lambda: gevent.spawn(stop_run, environment),
                    )
                    self.fail_guard.start()
        except (PromptError, ConfigError, ValueError) as exc:
            logger.error("cannot start the test: %s", exc)
            gevent.spawn(stop_run, environment)

    def on_grant_request(self, environment: Any = None, msg: Any = None, **_kw: object) -> None:
        if self.coordinator is not None:
            self.coordinator.on_grant_request(msg.node_id, int((msg.data or {}).get("want", 1)))

    def on_grant(self, environment: Any = None, msg: Any = None, **_kw: object) -> None:
        if isinstance(self.budget, WorkerBudget):
            self.budget.on_grant(int((msg.data or {}).get("count", 0)))

    def on_master_quitting(self, environment: Any, **_kw: object) -> None:
        """Ctrl-C or SIGTERM at the master: stop the workers first, so their last rows arrive."""
        runner = environment.runner
        if runner.state not in (STATE_INIT, STATE_STOPPED, STATE_STOPPING):
            logger.info("stopping the workers to collect their last rows")
            runner.stop()

    # -- live figures (web UI, /llm/stats) -----------------------------------------------------
    def start_live(self, interval: float = 2.0) -> None:
        def loop() -> None:
            while True:
                gevent.sleep(interval)
                self.refresh_live()

        gevent.spawn(loop)

    def refresh_live(self) -> None:
        live = self.live
        live.in_flight = self.in_flight + sum(self._worker_in_flight.values())
        if self.metrics is not None and self.metrics.latest:
            live.server = {**self.metrics.latest, "prefix_cache_hit_rate": self.metrics.hit_rate()}
        live.snapshot()

    def on_request_live(self, context: dict | None = None, **_kw: object) -> None:
        rec = context.get("llm_record") if context else None
        if rec is not None and not rec.cancelled:
            self.live.add(rec.ttft, rec.tpot, rec.decode_tps, rec.output_tokens, rec.success)

    def on_rows_live(self, rows: list[list[str]]) -> None:
        for row in rows:
            self.live.add_row(dict(zip(COLUMNS, row, strict=False)))

    def on_report_in_flight(self, client_id: str, data: dict, **_kw: object) -> None:
        data["llm_in_flight"] = self.in_flight

    def on_worker_in_flight(self, client_id: str, data: dict, **_kw: object) -> None:
        if "llm_in_flight" in data:
            self._worker_in_flight[client_id] = int(data["llm_in_flight"])

    def on_test_stop(self, **_kw: object) -> None:
        if self.fail_guard is not None:
            self.fail_guard.stop()
        if self.coordinator is not None:
            self.coordinator.stop()
        self.stop_metrics()
        if isinstance(self.prompts, PromptPool):
            self.prompts.stop()


def stop_run(environment: Any) -> None:
    """End the test as Locust's own --run-time does: quit when headless, else stop."""
    options = environment.parsed_options
    runner = environment.runner
    if runner is None:
        return
    if isinstance(runner, MasterRunner):
        runner.stop()  # waits for the workers to stop, so their last rows arrive before the files close
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


def preflight(run: LLMRun, host: str | None) -> None:
    """Headless runs check everything before the first request: one clear line on any problem."""
    if not host:
        fail_fast("no server given: pass -H http://HOST:PORT (the vLLM server)")
    try:
        target = Target.parse(host)
        model = resolve_model(target, run.settings.api_key, run.settings.model)
        run.apply_settings(replace(run.settings, model=model))
        if run.role == "local":
            run.prepare_prompts(host)
        else:  # the master builds no load, but checks that prompts can be made
            source = run.build_prompt_source(host, "check")
            source.next_prompt()
    except ValueError as exc:
        fail_fast(str(exc), code=2)
    except (ConfigError, PromptError) as exc:
        fail_fast(str(exc), code=1)


def deliver_ctrl_c_to_main() -> None:
    """Raise Ctrl-C's KeyboardInterrupt in the main greenlet, where Locust handles it.

    Python raises it in whichever greenlet happens to run when SIGINT arrives (under load,
    often the reactor), which then dies with a traceback before gevent passes it on.
    Left alone where SIGINT is ignored or handled by someone else.
    """
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return
    main = gevent.getcurrent()

    def on_sigint() -> None:
        if not main.dead:
            main.throw(KeyboardInterrupt)

    gevent.signal_handler(signal.SIGINT, on_sigint)


def warn_if_exposed(options: Any, settings: Settings) -> None:
    """A web UI open to other hosts can start tests with the API key: say so when it has no login."""
    if options is None or getattr(options, "headless", True) or getattr(options, "worker", False):
        return
    host = getattr(options, "web_host", "") or ""
    if settings.api_key and host not in ("127.0.0.1", "localhost", "::1") and not getattr(options, "web_login", False):
        logger.warning(
            "the web UI listens on %s without a login while an API key is set: anyone who reaches it can run "
            "tests with the key; use --web-login or --web-host 127.0.0.1",
            host or "all interfaces",
        )


def register(environment: Any, preflight_checks: bool = True) -> LLMRun:
    """Validate options, check the server, and wire recording into ``environment``."""
    options = environment.parsed_options
    try:
        settings = Settings.from_options(options)
    except ConfigError as exc:
        fail_fast(str(exc))
    runner = environment.runner
    role = role_of(runner)
    if options is not None:  # a real locust process (not an Environment built by a test)
        deliver_ctrl_c_to_main()
    if role == "worker":
        install_cached_default_args()
    host = environment.host or getattr(options, "host", None)
    csv_prefix = getattr(options, "csv_prefix", None) if options is not None else None
    worker = runner.client_id if role == "worker" else "local"
    request_log = RequestLog(
        f"{csv_prefix}_requests.csv" if csv_prefix else None, worker=worker, forward=role == "worker"
    )
    if getattr(options, "web_login", False) and role != "worker" and web_login.credentials() is None:
        fail_fast("--web-login needs LOCUST_WEB_USERNAME and LOCUST_WEB_PASSWORD in the environment")
    try:
        run = LLMRun(environment, settings, request_log, role)
    except ValueError as exc:
        fail_fast(str(exc))
    environment.llm_run = run
    warn_if_exposed(options, settings)
    if preflight_checks and options is not None and getattr(options, "headless", False) and role != "worker":
        preflight(run, host)
    if csv_prefix:
        install_final_csv_write()
        write_run_config(f"{csv_prefix}_config.json", run.settings, options, host)
    # the backlog is recorded before the request log ships or closes its rows
    environment.events.test_stop.add_listener(run.backlog.drain)
    environment.events.quitting.add_listener(run.backlog.drain)
    request_log.register(environment)
    environment.events.test_start.add_listener(run.on_test_start)
    environment.events.test_stop.add_listener(run.on_test_stop)
    if role == "worker":
        request_log.ship_with(lambda kind, data: runner.send_message(kind, data))
        runner.register_message(GRANT, run.on_grant)
        environment.events.report_to_master.add_listener(run.on_report_in_flight)
    elif role == "master":
        runner.register_message(GRANT_REQUEST, run.on_grant_request)
        runner.register_message(ROWS_MESSAGE, request_log.on_rows_message)
        environment.events.quitting.add_listener(run.on_master_quitting)
        environment.events.worker_report.add_listener(run.on_worker_in_flight)
        request_log.on_rows_data = run.on_rows_live
    if role in ("local", "master"):
        if role == "local":
            environment.events.request.add_listener(run.on_request_live)
        run.start_live()
        web_login.install(environment)
        web_extension.install(environment, run.live, csv_prefix)
    return run
