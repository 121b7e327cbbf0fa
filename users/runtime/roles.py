"""The run's wiring into Locust, one class per role, as Locust has one runner class per role.

``register(environment)`` is the one call a locustfile makes (from its ``init`` listener,
through ``users.plugin.install``); it picks the role from the runner:

- ``LocalRole`` (one process): prompts, load, server state, the files, the live figures;
- ``MasterRole``: server state (cache reset, warm-up, ``/metrics``), the global ``-n``,
  the per-request CSV from the workers' rows, the live figures; sends no load
  (its side of the channel: ``distributed/master.py``);
- ``WorkerRole``: prompts and load with the master's settings; ships its rows to the master
  (``distributed/worker.py``).

Each finished request reaches the per-request CSV and the run's observers (``observe/observers.py``)
from one listener of Locust's ``request`` event, or at the master from the rows its workers ship.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import gevent
from locust.runners import STATE_INIT, STATE_STOPPED, STATE_STOPPING, MasterRunner, WorkerRunner

from llmclient.errors import ConfigError
from llmclient.schema import Row
from prompts.source import PromptError
from users.calibration.floor import calibrate, describe
from users.distributed.master import MasterCoordinator, MasterDispatch, MasterPort, MasterSide
from users.distributed.worker import WorkerBudget, WorkerSide
from users.load.open_loop import OpenLoop, local_arrivals
from users.load.sweep import LoadPort, LocalPort, SweepDriver
from users.observe.cpu_watch import CpuWatch
from users.observe.observers import Observers
from users.observe.otlp import OtlpReceiver
from users.observe.request_log import RequestLog
from users.runtime.fail_ratio import FailRatioGuard
from users.runtime.handle import keep_run
from users.runtime.lifecycle import (
    RampWatch,
    deliver_ctrl_c_to_main,
    end_with_error,
    fail_fast,
    preflight,
    say_schedule,
    say_trace,
    say_unfinished_ramp,
    say_warm_cache,
    stop_run,
    summarize_and_judge,
    warn_if_exposed,
    write_run_config,
)
from users.runtime.live import LiveFigures
from users.runtime.locust_fixes import install_cached_default_args, install_final_csv_write, install_requests_only_total
from users.services.recorder import ENDPOINT_KEY, RECORD_KEY
from users.services.run import LLMRun
from users.settings.budget import Budget, RequestBudget
from users.settings.mode import Levels
from users.settings.settings import Settings
from users.web import login as web_login

if TYPE_CHECKING:
    from locust.env import Environment

logger = logging.getLogger(__name__)

R = TypeVar("R")


class Role:
    """What every role does; subclasses add their own part."""

    # sends requests (local, worker)
    builds_load: ClassVar[bool] = True
    # resets, warms and scrapes the server (local, master)
    touches_server: ClassVar[bool] = True
    # the ``worker`` column of this process's rows
    worker_id = "local"
    # distinguishes this process's prompt suffixes (and its users' randomness) from other workers'
    stream_id = "0"

    def __init__(self, environment: Environment, settings: Settings) -> None:
        self.environment = environment
        self.csv_prefix = settings.locust.csv_prefix
        self.host: str | None = environment.host or settings.locust.host
        self.request_log = RequestLog(
            f"{self.csv_prefix}_requests.csv" if self.csv_prefix else None, forward=not self.touches_server
        )
        # is the client the bottleneck?
        self.cpu = CpuWatch()
        self.run = LLMRun(
            settings,
            self.request_log,
            environment.events.request.fire,
            self.on_fatal,
            self.csv_prefix,
            self.stream_id,
            extra_columns=self.cpu.peak_for_scrape,
        )
        # every finished request's live observers (observe/observers.py)
        self.observers = Observers()
        self.fail_guard: FailRatioGuard | None = None
        # this process's sender of due arrivals
        self.open_loop: OpenLoop | None = None
        # a sweep's or capacity search's levels (local, master)
        self.sweep: SweepDriver | None = None
        self.figures = LiveFigures(environment, self.run, self.cpu, self.in_flight_now, self.queued_now)
        # did the closed loop reach its users before it stopped?
        self.ramp = RampWatch()

    def on_fatal(self, message: str) -> None:
        """The run cannot go on: said once, the run ends."""
        end_with_error(self.environment, message)

    def in_flight_now(self) -> float:
        return float(self.run.context.in_flight)

    def queued_now(self) -> float:
        return float(self.open_loop.queued if self.open_loop is not None else 0)

    # -- wiring --------------------------------------------------------------------------------
    def wire(self) -> None:
        events = self.environment.events
        run = self.run
        headless = run.context.settings.locust.headless
        if (run.context.settings.output.check or headless) and self.touches_server and self.csv_prefix:
            # quitting calls its listeners last first: this one after every row is in
            prefix = self.csv_prefix
            # the results, printed after Locust's own tables
            said: list[str] = []

            def judge(environment: Environment, **_kw: object) -> None:
                self.request_log.flush()
                said.append(summarize_and_judge(environment, prefix, run.context.settings))

            events.quitting.add_listener(judge)
            events.quit.add_listener(lambda **_kw: said and said[0] and print(said[0], flush=True))
        # an open loop's requests are cut off first, then the backlog is recorded, before the request
        # log ships or closes its rows
        for hook in (events.test_stop, events.quitting):
            hook.add_listener(self.stop_open_loop)
            hook.add_listener(run.recorder.drain)
        events.request.add_listener(self.on_request)
        events.quit.add_listener(lambda **_kw: self.request_log.close())
        port = run.context.settings.measurement.otlp_port
        # after the rows are closed: the spans joined into them
        if port is not None and self.touches_server:
            try:
                receiver = OtlpReceiver(port, self.csv_prefix)
            except ConfigError as exc:
                fail_fast(str(exc))
            path = f"{self.csv_prefix}_requests.csv" if self.csv_prefix else None
            events.quit.add_listener(lambda **_kw: receiver.finish(path))
        events.test_start.add_listener(self.on_test_start)
        events.test_start.add_listener(self.ramp.on_start)
        events.spawning_complete.add_listener(self.ramp.on_spawned)
        events.test_stopping.add_listener(self.ramp.on_stopping)
        events.test_stop.add_listener(self.on_test_stop)

    def observe_everything(self) -> None:
        """The live figures, the exporter and a sweep's level windows observe every finished request."""
        self.observers.add(self.run.live.observe)
        self.observers.add(self.figures.exporter.observe)
        self.observers.add(lambda row: self.sweep.observe(row) if self.sweep is not None else None)

    def on_request(self, context: dict[str, Any] | None = None, **_kw: object) -> None:
        """Locust's request event: a request of this process finished (its TTFT/TPOT rows carry no record)."""
        rec = context.get(RECORD_KEY) if context else None
        if rec is not None and context is not None:
            row = Row.of(rec, context.get(ENDPOINT_KEY, ""), self.worker_id)
            self.request_log.add(row)
            self.observers.observe(row)

    # -- the test --------------------------------------------------------------------------------
    def on_test_start(self, environment: Environment, **_kw: object) -> None:
        host = environment.host
        if not host:
            logger.error("no host: set -H http://HOST:PORT or the host field of the web UI")
            return
        self.run.live.reset()
        self.cpu.start()
        try:
            # the web UI's form (and, on a worker, the master's spawn message) may have changed the options
            self.run.context.retake(Settings.from_options(environment.parsed_options))
            self.start(host)
        except (PromptError, ConfigError, ValueError) as exc:
            logger.error("cannot start the test: %s", exc)
            gevent.spawn(stop_run, environment)

    def new_budget(self) -> Budget:
        """The requests this process may send in a test (``-n``: its share, or none to count)."""
        return RequestBudget(None)

    def start(self, host: str) -> None:
        """The role's part of a test start (raises PromptError, ConfigError, ValueError)."""
        self.run.context.begin_test(self.new_budget())
        if self.builds_load:
            self.run.prompts.prepare(host)
            self.run.sessions.prepare(host)
        if self.touches_server:
            say_trace(self.run)
            self.run.primer.prime(host)
            ratio = self.run.context.settings.load.max_fail_ratio
            if ratio is not None:
                self.fail_guard = FailRatioGuard(
                    self.environment.stats,
                    self.run.context.endpoint.path,
                    ratio,
                    lambda: gevent.spawn(stop_run, self.environment),
                )
                self.fail_guard.start()

    def on_test_stop(self, **_kw: object) -> None:
        if self.fail_guard is not None:
            self.fail_guard.stop()
        self.cpu.stop()
        self.run.primer.stop()
        self.run.prompts.stop()
        if self.touches_server:
            say_schedule(self.run)
            say_warm_cache(self.run)
            say_unfinished_ramp(self.environment, self.run, self.ramp.users)
            self.cpu.finish(self.csv_prefix)

    def stop_open_loop(self, **_kw: object) -> None:
        if self.sweep is not None:
            self.sweep.stop()
            self.sweep = None
        if self.open_loop is not None:
            self.open_loop.stop()
            self.open_loop = None

    def start_sweep(self, host: str, port: LoadPort, on_end: Callable[[], None] | None = None) -> None:
        levels = self.run.context.settings.mode
        assert isinstance(levels, Levels)

        def end() -> None:
            if on_end is not None:
                on_end()
            gevent.spawn(stop_run, self.environment)

        self.sweep = SweepDriver(self.run, port, levels, self.csv_prefix, host, end)
        self.sweep.start()

    def on_budget_complete(self) -> None:
        settings = self.run.context.settings
        logger.info("All %s %s finished", settings.total_requests, settings.unit)
        gevent.spawn(stop_run, self.environment)


class LocalRole(Role):
    def wire(self) -> None:
        super().wire()
        self.observe_everything()
        self.figures.serve_metrics()
        self.figures.wire_web(self.csv_prefix)

    def new_budget(self) -> Budget:
        self.budget = RequestBudget(self.run.context.settings.total_requests, on_complete=self.on_budget_complete)
        return self.budget

    def start(self, host: str) -> None:
        settings = self.run.context.settings
        super().start(host)
        budget = self.budget
        if settings.mode.levels:
            self.open_loop = OpenLoop(self.run, host, settings.load.max_concurrency)
            self.start_sweep(host, LocalPort(self.open_loop, settings.load.burstiness, settings.load.seed))
        elif settings.mode.one_schedule:
            self.open_loop = OpenLoop(self.run, host, settings.load.max_concurrency)

            # with -n the budget ends the run; a schedule that ends first (stages, a trace) ends it here, from
            # a greenlet of its own (stopping kills the open loop's, which calls this)
            def on_end() -> None:
                if not budget.exhausted:
                    gevent.spawn(stop_run, self.environment)

            self.open_loop.start(local_arrivals(self.run), on_end)


class MasterRole(Role):
    builds_load = False

    def __init__(self, environment: Environment, settings: Settings) -> None:
        super().__init__(environment, settings)
        runner = runner_of(environment, MasterRunner)
        self.side = MasterSide(runner, self.request_log, self.observers, self.cpu, self.on_fatal)

    def in_flight_now(self) -> float:
        return super().in_flight_now() + sum(self.side.in_flight.values())

    def queued_now(self) -> float:
        return super().queued_now() + sum(self.side.queued.values())

    def wire(self) -> None:
        super().wire()
        # Locust binds a free port then, and says 0
        if self.run.context.settings.locust.master_bind_port == 0:
            logger.info("master listening for workers on port %d", self.side.runner.server.port)
        self.side.wire()
        events = self.environment.events
        events.worker_report.add_listener(self.side.on_worker_report)
        events.quitting.add_listener(self.on_quitting)
        self.observe_everything()
        self.figures.serve_metrics()
        self.figures.wire_web(self.csv_prefix)

    def start(self, host: str) -> None:
        side = self.side
        settings = self.run.context.settings
        # an open loop's -n is its schedule's: no grants, the dispatch says how many rows to expect
        coordinator = MasterCoordinator(
            self.environment,
            None if settings.mode.one_schedule else settings.total_requests,
            on_complete=self.on_budget_complete,
            sessions=settings.unit == "sessions",
        )
        dispatch = MasterDispatch(self.run, side.runner, coordinator) if settings.mode.scheduled else None
        port = MasterPort(dispatch, side.runner, settings.load.burstiness, settings.load.seed) if dispatch else None
        side.begin_test(coordinator, dispatch, port if settings.mode.levels else None)
        super().start(host)
        if side.port is not None:
            self.start_sweep(host, side.port, on_end=side.port.end)
        elif side.dispatch is not None:
            side.dispatch.start()

    def on_test_stop(self, **_kw: object) -> None:
        self.side.end_test()
        super().on_test_stop()

    def on_quitting(self, environment: Environment, **_kw: object) -> None:
        """Ctrl-C or SIGTERM at the master: stop the workers first, so their last rows arrive."""
        runner = environment.runner
        if runner is not None and runner.state not in (STATE_INIT, STATE_STOPPED, STATE_STOPPING):
            logger.info("stopping the workers to collect their last rows")
            runner.stop()


class WorkerRole(Role):
    touches_server = False

    def __init__(self, environment: Environment, settings: Settings) -> None:
        runner = runner_of(environment, WorkerRunner)
        self.worker_id = str(runner.client_id)
        index = getattr(runner, "worker_index", None)
        self.stream_id = f"w{index}" if index is not None else "0"
        super().__init__(environment, settings)
        self.side = WorkerSide(runner, self.run, self.request_log, self.cpu)

    def on_fatal(self, message: str) -> None:
        # the master says it and ends the run
        self.side.report_fatal(message)

    def wire(self) -> None:
        install_cached_default_args()
        # the open loop is stopped and the backlog recorded before the rows are shipped
        super().wire()
        self.side.wire()
        events = self.environment.events
        events.report_to_master.add_listener(self.side.on_report_to_master)
        events.test_stop.add_listener(self.side.ship)
        events.quitting.add_listener(self.side.ship)
        events.quit.add_listener(self.side.stop_shipping)
        # a worker's own figures on --metrics-port (one forked by --processes leaves them to the master)
        if not self.run.context.settings.locust.processes and self.figures.serve_metrics():
            self.observers.add(self.figures.exporter.observe)

    def new_budget(self) -> Budget:
        settings = self.run.context.settings
        # an open loop's -n is the master's schedule: no grants
        return (
            WorkerBudget(self.side.send)
            if settings.total_requests and not settings.mode.scheduled
            else RequestBudget(None)
        )

    def start(self, host: str) -> None:
        super().start(host)
        if self.run.context.settings.mode.scheduled:
            self.open_loop = self.side.start_open_loop(host)

    def stop_open_loop(self, **_kw: object) -> None:
        super().stop_open_loop()
        self.side.stop()


def run_calibration(settings: Settings, csv_prefix: str | None) -> None:
    """``--calibrate``: the client's floor at this run's concurrency and sizes, before it starts."""
    users = settings.load.max_concurrency or settings.locust.users or 1
    logger.info("calibrating the client's floor at %d streams (about 10 s)", users)
    try:
        result = calibrate(
            users, settings.prompts.input_tokens, settings.prompts.max_tokens, endpoint=settings.server.endpoint
        )
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("the calibration failed, the run goes on without it: %s", exc)
        return
    logger.info(describe(result))
    if csv_prefix:
        with open(f"{csv_prefix}_calibration.json", "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


def runner_of(environment: Environment, kind: type[R]) -> R:
    runner = environment.runner
    assert isinstance(runner, kind), f"a {kind.__name__} role"
    return runner


def role_for(environment: Environment) -> type[Role]:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        return MasterRole
    if isinstance(runner, WorkerRunner):
        return WorkerRole
    return LocalRole


def register(environment: Environment, preflight_checks: bool = True) -> LLMRun:
    """Validate the options, check the server, and build this process's run into ``environment``: the one
    place a run is built (its role's constructor makes its parts)."""
    try:
        settings = Settings.from_options(environment.parsed_options)
    except ConfigError as exc:
        fail_fast(str(exc))
    role_class = role_for(environment)
    locust = settings.locust
    if locust.parsed:
        deliver_ctrl_c_to_main()
    if locust.web_login and role_class.touches_server and web_login.credentials() is None:
        fail_fast("--web-login needs LOCUST_WEB_USERNAME and LOCUST_WEB_PASSWORD in the environment")
    try:
        role = role_class(environment, settings)
    except (ValueError, ConfigError) as exc:
        fail_fast(str(exc))
    run = role.run
    keep_run(environment, run)
    choose_classes(environment, settings, role_class)
    install_requests_only_total()
    if settings.output.check and role_class.touches_server and not role.csv_prefix:
        fail_fast("--check judges the run's summary, written beside the CSVs: give --csv PREFIX")
    warn_if_exposed(settings)
    if preflight_checks and locust.parsed and locust.headless and role.touches_server:
        preflight(run, role.host, role.builds_load)
    if role.csv_prefix:
        install_final_csv_write()
        write_run_config(f"{role.csv_prefix}_config.json", run.context.settings, role.host)
    if settings.measurement.calibrate and role.touches_server:
        run_calibration(run.context.settings, role.csv_prefix)
    role.wire()
    return run


def choose_classes(environment: Environment, settings: Settings, role_class: type[Role]) -> None:
    """The locustfile's classes this run uses: a user class that runs only when named is dropped unless it
    was (a worker runs what its master names), and the suite's StagesShape unless --stages names users."""
    named = set(settings.locust.user_classes)
    if role_class is not WorkerRole:
        kept = [u for u in environment.user_classes if not getattr(u, "only_when_named", False) or u.__name__ in named]
        environment.user_classes = kept
    if getattr(environment.shape_class, "runs_user_stages", False) and settings.mode.user_stages is None:
        environment.shape_class = None
