"""The run's wiring into Locust, one class per role, as Locust has one runner class per role.

``register(environment)`` is the one call a locustfile makes (from its ``init`` listener,
through ``users.plugin.install``); it picks the role from the runner:

- ``LocalRole`` (one process): prompts, load, server state, the files, the live figures;
- ``MasterRole``: server state (cache reset, warm-up, ``/metrics``), the global ``-n``,
  the per-request CSV from the workers' rows, the live figures; sends no load;
- ``WorkerRole``: prompts and load with the master's settings; ships its rows to the master.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import gevent
from locust.runners import STATE_INIT, STATE_STOPPED, STATE_STOPPING, MasterRunner, WorkerRunner

from llmclient.errors import ConfigError
from llmclient.schema import from_fields
from prompts.source import PromptError
from users.budget import RequestBudget
from users.calibrate import calibrate, describe
from users.cpu_watch import REPORT_KEY as CPU_REPORT_KEY
from users.cpu_watch import CpuWatch
from users.distributed import GRANT, GRANT_REQUEST, MasterCoordinator, WorkerBudget
from users.fail_ratio import FailRatioGuard
from users.lifecycle import (
    deliver_ctrl_c_to_main,
    fail_fast,
    preflight,
    say_error,
    stop_run,
    trace_facts,
    warn_if_exposed,
    write_run_config,
)
from users.locust_fixes import install_cached_default_args, install_final_csv_write
from users.open_loop import ARRIVALS, ARRIVALS_END, READY, ArrivalFeed, MasterDispatch, OpenLoop, local_arrivals
from users.options import Settings
from users.prometheus_export import IN_FLIGHT, LEVEL, QUEUED, STAGE, USERS, Exporter, serve
from users.recorder import RECORD_KEY
from users.request_log import ROWS_MESSAGE, RequestLog
from users.run import RUN_ATTRIBUTE, LLMRun
from users.sweep import CANCEL_LEVEL, CLOSED_LEVEL, LEVEL_DONE, LoadPort, LocalPort, MasterPort, SweepDriver
from users.web import extension as web_extension
from users.web import login as web_login

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.rpc.protocol import Message

logger = logging.getLogger(__name__)


class Role:
    """What every role does; subclasses add their own part."""

    builds_load: ClassVar[bool] = True  # sends requests (local, worker)
    touches_server: ClassVar[bool] = True  # resets, warms and scrapes the server (local, master)

    def __init__(self, environment: Environment, settings: Settings) -> None:
        self.environment = environment
        options = environment.parsed_options
        self.options = options
        self.csv_prefix: str | None = getattr(options, "csv_prefix", None) if options is not None else None
        self.host: str | None = environment.host or getattr(options, "host", None)
        self.request_log = RequestLog(
            f"{self.csv_prefix}_requests.csv" if self.csv_prefix else None,
            worker=self.worker_id,
            forward=not self.touches_server,
        )
        self.run = LLMRun(environment, settings, self.request_log, self.stream_id)
        self.run.prompts.on_fatal = self.end_with_error
        self.fail_guard: FailRatioGuard | None = None
        self.worker_in_flight: dict[str, int] = {}  # the master's view of its workers
        self.open_loop: OpenLoop | None = None  # this process's sender of due arrivals
        self.sweep: SweepDriver | None = None  # a sweep's or capacity search's levels (local, master)
        self.worker_queued: dict[str, int] = {}
        self.cpu = CpuWatch()  # is the client the bottleneck?
        self.run.primer.extra_columns = self.cpu.peak_for_scrape
        context = self.run.context
        self.exporter = Exporter(context.known_model, {
            IN_FLIGHT: self.in_flight_now,
            QUEUED: self.queued_now,
            USERS: self.users_now,
            STAGE: lambda: context.current_stage(time.time()),
            LEVEL: lambda: float((self.run.live.current_level or {}).get("level", 0)),
        })  # fmt: skip

    @property
    def worker_id(self) -> str:
        """The ``worker`` column of this process's rows."""
        return "local"

    @property
    def stream_id(self) -> str:
        """Distinguishes this process's prompt suffixes from other workers'."""
        return "0"

    # -- wiring --------------------------------------------------------------------------------
    def wire(self) -> None:
        events = self.environment.events
        run = self.run
        # an open loop's requests are cut off first, then the backlog is recorded, before the request
        # log ships or closes its rows
        events.test_stop.add_listener(self.stop_open_loop)
        events.quitting.add_listener(self.stop_open_loop)
        events.test_stop.add_listener(run.recorder.drain)
        events.quitting.add_listener(run.recorder.drain)
        self.request_log.register(self.environment)
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        if self.serve_metrics() and not self.touches_server:  # a worker's own figures
            events.request.add_listener(self.on_request_metrics)

    def serve_metrics(self) -> bool:
        """``--metrics-port``: the Prometheus figures on a port of their own; True when served."""
        port = self.run.context.settings.metrics_port
        if port is None:
            return False
        web_host = getattr(self.options, "web_host", "") or ""
        host = "" if web_host in ("", "*") else web_host
        try:
            _server, bound = serve(self.exporter, host, port)
        except OSError as exc:
            logger.error("cannot serve --metrics-port %s: %s", port, exc.strerror or exc)
            return False
        logger.info("Prometheus figures at http://%s:%d/metrics", host or "0.0.0.0", bound)
        return True

    def on_request_metrics(self, context: dict[str, Any] | None = None, **_kw: object) -> None:
        rec = context.get(RECORD_KEY) if context else None
        if rec is not None:
            self.exporter.observe_record(rec)

    def users_now(self) -> float:
        runner = self.environment.runner
        return float(runner.user_count) if runner is not None else 0.0

    def in_flight_now(self) -> float:
        return float(self.run.context.in_flight + sum(self.worker_in_flight.values()))

    def queued_now(self) -> float:
        local = self.open_loop.queued if self.open_loop is not None else 0
        return float(local + sum(self.worker_queued.values()))

    def wire_live(self) -> None:
        """The live figures, the web UI's LLM tab and its routes (local and master)."""

        def loop() -> None:
            while True:
                gevent.sleep(2.0)
                self.refresh_live()

        gevent.spawn(loop)
        if getattr(self.options, "web_port", None) == 0:
            gevent.spawn(self.say_web_port)
        web_login.install(self.environment)
        web_extension.install(self.environment, self.run.live, self.request_log, self.csv_prefix, self.exporter)

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

    def refresh_live(self) -> None:
        live = self.run.live
        live.in_flight = int(self.in_flight_now())
        live.queued = int(self.queued_now())
        live.client_cpu_share = self.cpu.share_now()
        server = self.run.primer.latest()
        if server:
            live.server = server
        live.snapshot()

    # -- the test --------------------------------------------------------------------------------
    def end_with_error(self, message: str) -> None:
        """The run cannot go on (prompts cannot be built mid-run): one line, as a failed start says it, the
        run stopped as -t stops it, and exit status 1."""
        say_error(message)
        self.environment.process_exit_code = 1
        gevent.spawn(stop_run, self.environment)

    def on_test_start(self, environment: Environment, **_kw: object) -> None:
        host = environment.host
        if not host:
            logger.error("no host: set -H http://HOST:PORT or the host field of the web UI")
            return
        self.run.live.reset()
        self.cpu.start()
        self.worker_in_flight.clear()
        self.worker_queued.clear()
        self.run.context.started = time.time()
        try:
            # the web UI's form (and, on a worker, the master's spawn message) may have changed the options
            options = Settings.from_options(environment.parsed_options)
            if options != replace(self.run.context.settings, model=options.model):
                self.run.context.apply(options)
            self.start(host)
        except (PromptError, ConfigError, ValueError) as exc:
            logger.error("cannot start the test: %s", exc)
            gevent.spawn(stop_run, environment)

    def start(self, host: str) -> None:
        """The role's part of a test start (raises PromptError, ConfigError, ValueError)."""
        if self.builds_load:
            self.run.prompts.prepare(host)
        if self.touches_server:
            self.say_trace()
            self.run.primer.prime(host)
            ratio = self.run.context.settings.max_fail_ratio
            if ratio is not None:
                self.fail_guard = FailRatioGuard(
                    self.environment.stats,
                    self.run.context.endpoint.path,
                    ratio,
                    lambda: gevent.spawn(stop_run, self.environment),
                )
                self.fail_guard.start()

    def say_trace(self) -> None:
        """A replay says what it replays, once, at its start."""
        settings = self.run.context.settings
        trace = self.run.context.trace()
        if trace is None:
            return
        facts = trace_facts(settings, trace)
        ideal = facts.get("ideal_prefix_cache_hit_rate")
        logger.info(
            "replaying %s (%s): %d requests over %.1f s at speed %g (%.2f req/s); an unbounded prefix cache would "
            "hold %s of its prompt tokens", trace.path, trace.format, len(trace.requests),
            trace.span_s / settings.trace_speed, settings.trace_speed, facts.get("rate") or 0.0,
            f"{ideal:.1%}" if isinstance(ideal, float) else "n/a (no hash ids)",
        )  # fmt: skip

    def on_test_stop(self, **_kw: object) -> None:
        if self.fail_guard is not None:
            self.fail_guard.stop()
        self.cpu.stop()
        self.run.primer.stop()
        self.run.prompts.stop()
        if self.touches_server:
            self.report_schedule()
            self.report_warm_cache()
            self.cpu.finish(self.csv_prefix)

    def stop_open_loop(self, **_kw: object) -> None:
        if self.sweep is not None:
            self.sweep.stop()
            self.sweep = None
        if self.open_loop is not None:
            self.open_loop.stop()
            self.open_loop = None

    def report_schedule(self) -> None:
        """An open loop's proof of the schedule: one line, and a warning line when it slipped."""
        proof = self.run.live.schedule_proof()
        if proof is None:
            return
        logger.info(
            "open loop: %d requests, scheduled %.2f req/s, achieved %.2f, schedule lag p50/p99/max %.2f/%.2f/%.2f ms",
            proof.requests, proof.scheduled_rate, proof.achieved_rate,
            proof.lag_p50_s * 1e3, proof.lag_p99_s * 1e3, proof.lag_max_s * 1e3,
        )  # fmt: skip
        if proof.warning():
            logger.warning(proof.warning())

    def start_sweep(self, host: str, port: LoadPort, on_end: Callable[[], None] | None = None) -> None:
        plan = self.run.context.settings.make_plan()
        assert plan is not None

        def end() -> None:
            if on_end is not None:
                on_end()
            gevent.spawn(stop_run, self.environment)

        self.sweep = SweepDriver(self.run, port, plan, self.csv_prefix, lambda: self.run.primer.prepare_level(host),
                                 end)  # fmt: skip
        self.sweep.start()

    def report_warm_cache(self) -> None:
        """A cache warm from an earlier run makes a server look fast: say so in one line."""
        warm = self.run.live.warm_cache
        if warm:
            logger.warning(
                "%d requests found their prompt's own part already in the server's prefix cache: a cache warm from "
                "an earlier run with the same --seed, so TTFT looks better than a cold server's; use a new --seed or "
                "--reset-prefix-cache", warm,
            )  # fmt: skip

    def on_budget_complete(self) -> None:
        logger.info("All %s requests finished", self.run.context.settings.num_requests)
        gevent.spawn(stop_run, self.environment)


class LocalRole(Role):
    def wire(self) -> None:
        super().wire()
        self.environment.events.request.add_listener(self.on_request_live)
        self.wire_live()

    def start(self, host: str) -> None:
        settings = self.run.context.settings
        budget = RequestBudget(settings.num_requests, on_complete=self.on_budget_complete)
        self.run.context.budget = budget
        super().start(host)
        if settings.levels:
            self.open_loop = OpenLoop(self.run, host, settings.max_concurrency)
            self.start_sweep(host, LocalPort(self.open_loop, settings.burstiness, settings.seed))
        elif settings.open_loop_run:
            self.open_loop = OpenLoop(self.run, host, settings.max_concurrency)

            # with -n the budget ends the run; a schedule that ends first (stages, a trace) ends it here, from
            # a greenlet of its own (stopping kills the open loop's, which calls this)
            def on_end() -> None:
                if not budget.exhausted:
                    gevent.spawn(stop_run, self.environment)

            self.open_loop.start(local_arrivals(self.run), on_end)

    def on_request_live(self, context: dict[str, Any] | None = None, **_kw: object) -> None:
        self.on_request_metrics(context)
        rec = context.get(RECORD_KEY) if context else None
        if rec is not None and rec.warm_cache:
            self.run.live.warm_cache += 1
        if rec is not None and self.sweep is not None:
            self.sweep.observe(rec.level, rec.start_time, rec.success, rec.cancelled, rec.ttft, rec.tpot, rec.e2e)
        if rec is not None and not rec.cancelled:
            self.run.live.add(rec.ttft, rec.tpot, rec.decode_tps, rec.output_tokens, rec.success)
        if rec is not None and rec.scheduled_time is not None and rec.schedule_lag is not None:
            self.run.live.add_schedule(rec.scheduled_time, rec.schedule_lag)


class MasterRole(Role):
    builds_load = False

    def __init__(self, environment: Environment, settings: Settings) -> None:
        super().__init__(environment, settings)
        self.coordinator: MasterCoordinator | None = None
        self.dispatch: MasterDispatch | None = None
        self.port: MasterPort | None = None  # a sweep's levels, through the workers

    def wire(self) -> None:
        super().wire()
        runner = self.environment.runner
        events = self.environment.events
        assert runner is not None
        if getattr(self.options, "master_bind_port", None) == 0:  # Locust binds a free port then, and says 0
            assert isinstance(runner, MasterRunner)
            logger.info("master listening for workers on port %d", runner.server.port)
        runner.register_message(GRANT_REQUEST, self.on_grant_request)
        runner.register_message(ROWS_MESSAGE, self.request_log.on_rows_message)
        runner.register_message(READY, self.on_worker_ready)
        runner.register_message(LEVEL_DONE, self.on_level_done)
        events.quitting.add_listener(self.on_quitting)
        events.worker_report.add_listener(self.on_worker_report)
        self.request_log.on_rows_data = self.on_rows_live
        self.wire_live()

    def start(self, host: str) -> None:
        if self.coordinator is not None:  # a new ledger for every test
            self.coordinator.stop()
        settings = self.run.context.settings
        # an open loop's -n is its schedule's: no grants, the dispatch says how many rows to expect
        self.coordinator = MasterCoordinator(
            self.environment,
            None if settings.open_loop_run else settings.num_requests,
            on_complete=self.on_budget_complete,
        )
        self.request_log.on_rows = self.coordinator.on_rows
        self.coordinator.start()
        super().start(host)
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        if settings.levels:
            self.dispatch = MasterDispatch(self.run, runner, self.coordinator)
            self.port = MasterPort(self.dispatch, runner, settings.burstiness, settings.seed)
            self.start_sweep(host, self.port, on_end=self.port.end)
        elif settings.open_loop_run:
            self.dispatch = MasterDispatch(self.run, runner, self.coordinator)
            self.dispatch.start()

    def on_worker_ready(
        self, environment: Environment | None = None, msg: Message | None = None, **_kw: object
    ) -> None:
        if self.dispatch is not None and msg is not None:
            self.dispatch.on_ready(msg.node_id)

    def on_level_done(self, environment: Environment | None = None, msg: Message | None = None,
                      **_kw: object) -> None:  # fmt: skip
        if self.port is not None and msg is not None:
            self.port.on_level_done(msg.node_id, msg.data or {})

    def on_test_stop(self, **_kw: object) -> None:
        if self.coordinator is not None:
            self.coordinator.stop()
        if self.dispatch is not None:
            self.dispatch.stop()
            self.dispatch = None
        super().on_test_stop()

    def on_grant_request(
        self, environment: Environment | None = None, msg: Message | None = None, **_kw: object
    ) -> None:
        if self.coordinator is not None and msg is not None:
            self.coordinator.on_grant_request(msg.node_id, int((msg.data or {}).get("want", 1)))

    def on_quitting(self, environment: Environment, **_kw: object) -> None:
        """Ctrl-C or SIGTERM at the master: stop the workers first, so their last rows arrive."""
        runner = environment.runner
        if runner is not None and runner.state not in (STATE_INIT, STATE_STOPPED, STATE_STOPPING):
            logger.info("stopping the workers to collect their last rows")
            runner.stop()

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_kw: object) -> None:
        if IN_FLIGHT_KEY in data:
            self.worker_in_flight[client_id] = int(data[IN_FLIGHT_KEY])
        if QUEUED_KEY in data:
            self.worker_queued[client_id] = int(data[QUEUED_KEY])
        if CPU_REPORT_KEY in data:
            self.cpu.on_worker_report(client_id, data[CPU_REPORT_KEY])

    def on_rows_live(self, rows: list[list[str]]) -> None:
        for fields in rows:
            row = from_fields(fields)
            self.run.live.add_row(row)
            self.exporter.observe_row(row)
            if self.sweep is not None:
                self.sweep.observe_row(row)


class WorkerRole(Role):
    touches_server = False

    def __init__(self, environment: Environment, settings: Settings) -> None:
        super().__init__(environment, settings)
        self.feed: ArrivalFeed | None = None  # an open loop's arrivals, as the master sends them

    @property
    def worker_id(self) -> str:
        runner = self.environment.runner
        return str(getattr(runner, "client_id", "worker"))

    @property
    def stream_id(self) -> str:
        index = getattr(self.environment.runner, "worker_index", None)
        return f"w{index}" if index is not None else "0"

    def serve_metrics(self) -> bool:
        if getattr(self.options, "processes", None):  # forked by --processes: the master serves every figure
            return False
        return super().serve_metrics()

    def wire(self) -> None:
        install_cached_default_args()
        super().wire()
        runner = self.environment.runner
        assert runner is not None
        self.request_log.ship_with(lambda kind, data: runner.send_message(kind, data))
        runner.register_message(GRANT, self.on_grant)
        runner.register_message(ARRIVALS, self.on_arrivals)
        runner.register_message(ARRIVALS_END, self.on_arrivals_end)
        runner.register_message(CLOSED_LEVEL, self.on_closed_level)
        runner.register_message(CANCEL_LEVEL, self.on_cancel_level)
        self.environment.events.report_to_master.add_listener(self.on_report_to_master)

    def start(self, host: str) -> None:
        context = self.run.context
        runner = self.environment.runner
        assert runner is not None
        open_loop = context.settings.scheduled
        context.budget = (  # an open loop's -n is the master's schedule: no grants
            WorkerBudget(lambda kind, data: runner.send_message(kind, data))
            if context.settings.num_requests and not open_loop
            else RequestBudget(None)
        )
        super().start(host)
        if open_loop:
            self.feed = ArrivalFeed()
            self.open_loop = OpenLoop(self.run, host, None)
            self.open_loop.start(self.feed)
            runner.send_message(READY, None)

    def on_arrivals(self, environment: Environment | None = None, msg: Message | None = None, **_kw: object) -> None:
        if self.open_loop is not None and self.feed is not None and msg is not None and msg.data:
            self.open_loop.set_cap(msg.data.get("cap"))
            self.open_loop.level = str(msg.data.get("level") or "")
            if msg.data.get("groups"):  # a prefix-groups level: its own prompts
                self.run.prompts.use_groups(int(msg.data["groups"]))
            self.feed.put_many(msg.data["arrivals"])

    def on_closed_level(self, environment: Environment | None = None, msg: Message | None = None,
                        **_kw: object) -> None:  # fmt: skip
        """A sweep's concurrency level: this worker's share of the requests in flight, then LEVEL_DONE."""
        open_loop, runner = self.open_loop, self.environment.runner
        if open_loop is None or runner is None or msg is None or not msg.data:
            return
        data, sent = msg.data, [0]

        def count() -> None:
            sent[0] += 1

        def run_level() -> None:
            open_loop.join_closed()
            runner.send_message(LEVEL_DONE, {"level": data["level"], "sent": sent[0]})

        open_loop.level = str(data["level"])
        open_loop.start_closed(int(data["concurrency"]), float(data["until"]), data.get("limit"), on_send=count)
        gevent.spawn(run_level)

    def on_cancel_level(self, environment: Environment | None = None, msg: Message | None = None,
                        **_kw: object) -> None:  # fmt: skip
        """The master cut the level off: drop its arrivals and requests, and read the feed again."""
        if self.open_loop is not None and self.feed is not None:
            self.open_loop.cancel()
            self.feed.clear()
            self.open_loop.start(self.feed)

    def on_arrivals_end(
        self, environment: Environment | None = None, msg: Message | None = None, **_kw: object
    ) -> None:
        if self.feed is not None:
            self.feed.end()

    def on_grant(self, environment: Environment | None = None, msg: Message | None = None, **_kw: object) -> None:
        budget = self.run.context.budget
        if isinstance(budget, WorkerBudget) and msg is not None:
            budget.on_grant(int((msg.data or {}).get("count", 0)))

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_kw: object) -> None:
        data[IN_FLIGHT_KEY] = self.run.context.in_flight
        data[QUEUED_KEY] = self.open_loop.queued if self.open_loop is not None else 0
        data[CPU_REPORT_KEY] = self.cpu.report()


IN_FLIGHT_KEY = "llm_in_flight"
QUEUED_KEY = "llm_queued"


def run_calibration(settings: Settings, options: Any, csv_prefix: str | None) -> None:
    """``--calibrate``: the client's floor at this run's concurrency and sizes, before it starts."""
    users = settings.max_concurrency or getattr(options, "num_users", None) or 1
    logger.info("calibrating the client's floor at %d streams (about 10 s)", users)
    try:
        result = calibrate(users, settings.input_tokens, settings.max_tokens, endpoint=settings.endpoint)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("the calibration failed, the run goes on without it: %s", exc)
        return
    logger.info(describe(result))
    if csv_prefix:
        with open(f"{csv_prefix}_calibration.json", "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


def role_for(environment: Environment) -> type[Role]:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        return MasterRole
    if isinstance(runner, WorkerRunner):
        return WorkerRole
    return LocalRole


def register(environment: Environment, preflight_checks: bool = True) -> LLMRun:
    """Validate options, check the server, and wire recording into ``environment``."""
    options = environment.parsed_options
    try:
        settings = Settings.from_options(options)
    except ConfigError as exc:
        fail_fast(str(exc))
    role_class = role_for(environment)
    if options is not None:  # a real locust process (not an Environment built by a test)
        deliver_ctrl_c_to_main()
    if getattr(options, "web_login", False) and role_class.touches_server and web_login.credentials() is None:
        fail_fast("--web-login needs LOCUST_WEB_USERNAME and LOCUST_WEB_PASSWORD in the environment")
    try:
        role = role_class(environment, settings)
    except ValueError as exc:
        fail_fast(str(exc))
    run = role.run
    setattr(environment, RUN_ATTRIBUTE, run)
    warn_if_exposed(options, settings)
    if preflight_checks and options is not None and getattr(options, "headless", False) and role.touches_server:
        preflight(run, role.host, role.builds_load)
    if role.csv_prefix:
        install_final_csv_write()
        write_run_config(f"{role.csv_prefix}_config.json", run.context.settings, options, role.host)
    if run.context.settings.calibrate and role.touches_server:
        run_calibration(run.context.settings, options, role.csv_prefix)
    role.wire()
    return run
