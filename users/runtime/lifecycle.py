"""Starting and ending a run: checks before it, one-line failures, Ctrl-C, the end of the test, its config file."""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import time
from typing import TYPE_CHECKING, NoReturn

import gevent
import locust
from locust.runners import MasterRunner

from llmclient.control import check_endpoint, check_profiler, resolve_model
from llmclient.errors import ConfigError, KeyRefused
from prompts.source import PromptError
from scheduler.trace import Trace, TraceError, hit_rate, ideal_cached_tokens, load_trace
from users.distributed import protocol
from users.runtime.locust_fixes import end_ramp
from users.services.run import LLMRun
from users.settings.hosts import split_hosts
from users.settings.mode import ClosedLoop
from users.settings.settings import LocustOptions, Settings

if TYPE_CHECKING:
    from locust.env import Environment

logger = logging.getLogger(__name__)


def say_error(message: str) -> None:
    """The one line a failure that ends the run is said in, before it or during it."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def fail_fast(message: str, code: int = 2) -> NoReturn:
    """Bad input: one line on stderr and a non-zero exit, never a traceback."""
    say_error(message)
    sys.exit(code)


def stop_run(environment: Environment) -> None:
    """End the test as Locust's own --run-time does: quit when headless, else stop."""
    options = LocustOptions.of(environment.parsed_options)
    runner = environment.runner
    if runner is None:
        return
    if isinstance(runner, MasterRunner):
        # a stop during the ramp-up would otherwise be followed by more spawns
        end_ramp(runner)
        # waits for the workers to stop, so their last rows arrive before the files close
        runner.stop()
    if not options.parsed or options.headless:
        runner.quit()
        return
    runner.stop()
    autoquit = options.autoquit
    if options.autostart and autoquit is not None and autoquit >= 0:
        gevent.sleep(autoquit)
        runner.quit()
        if environment.web_ui:
            environment.web_ui.stop()


def end_with_error(environment: Environment, message: str) -> None:
    """The run cannot go on (prompts cannot be built mid-run): one line, as a failed start says it, the
    run stopped as -t stops it, and exit status 1."""
    say_error(message)
    environment.process_exit_code = 1
    # its workers exit non-zero too
    if isinstance(environment.runner, MasterRunner):
        environment.runner.send_message(protocol.ABORT, {"message": message})
    gevent.spawn(stop_run, environment)


def preflight(run: LLMRun, host: str | None, builds_load: bool) -> None:
    """Headless runs check everything before the first request: one clear line on any problem."""
    if not host:
        fail_fast("no server given: pass -H http://HOST:PORT (the vLLM server)")
    context = run.context
    try:
        hosts = split_hosts(host)
        mix = context.settings.server.model_mix
        # every replica serves every model of the mix
        if mix is not None and len(mix.names) > 1:
            for one in hosts:
                for name in mix.names:
                    resolve_model(context.target(one), context.settings.server.api_key, name)
        else:
            model = resolve_model(
                context.target(hosts[0]), context.settings.server.api_key, context.settings.server.model
            )
            # every replica serves the model
            for other in hosts[1:]:
                resolve_model(context.target(other), context.settings.server.api_key, model)
            context.apply(context.settings.with_model(model))
        # every replica is reached, shows the endpoint's route or not (and the profiler)
        for one in hosts:
            if not check_endpoint(context.target(one), context.settings.server.api_key, context.endpoint):
                logger.info(
                    "%s answers 404 to a GET of %s, which proves nothing: the first request will tell",
                    one,
                    context.endpoint.path,
                )
            if context.settings.measurement.profile or context.settings.measurement.profile_level is not None:
                try:
                    check_profiler(context.target(one), context.auth)
                except ConfigError as exc:
                    raise ConfigError(f"--profile: {exc}") from None
        if builds_load:
            run.prompts.prepare(host)
        # the master builds no load, but checks that prompts can be made
        else:
            run.prompts.check(host)
    except ValueError as exc:
        fail_fast(str(exc), code=2)
    except KeyRefused as exc:
        fail_fast(f"{exc}; set --api-key or OPENAI_API_KEY", code=1)
    except (ConfigError, PromptError) as exc:
        fail_fast(str(exc), code=1)


def write_run_config(path: str, settings: Settings, host: str | None) -> None:
    """The run's configuration for the report, without the API key."""
    config = settings.config()
    config.update(
        host=host,
        users=settings.locust.users,
        spawn_rate=settings.locust.spawn_rate,
        run_time=settings.locust.run_time,
        locust_version=locust.__version__,
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    if settings.load.trace:
        config["trace_facts"] = trace_facts(settings)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)


def trace_facts(settings: Settings, trace: Trace | None = None) -> dict[str, object]:
    """The whole trace's figures, for the report (empty when it cannot be read: the run says why)."""
    if trace is None:
        try:
            trace = load_trace(settings.load.trace, settings.load.trace_format, settings.load.trace_block_tokens)
        except TraceError:
            return {}
    ideal = hit_rate(ideal_cached_tokens(trace), trace) if any(r.hash_ids for r in trace.requests) else None
    rate = trace.rate(settings.load.trace_speed)
    return {
        "format": trace.format,
        "requests": len(trace.requests),
        "span_s": trace.span_s,
        "rate": None if math.isnan(rate) else rate,
        "ideal_prefix_cache_hit_rate": ideal,
    }


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


def warn_if_exposed(settings: Settings) -> None:
    """A web UI open to other hosts can start tests with the API key: say so when it has no login."""
    options = settings.locust
    if not options.parsed or options.headless or options.worker:
        return
    host = options.web_host
    if settings.server.api_key and host not in ("127.0.0.1", "localhost", "::1") and not options.web_login:
        logger.warning(
            "the web UI listens on %s without a login while an API key is set: anyone who reaches it can run "
            "tests with the key; use --web-login or --web-host 127.0.0.1",
            host or "all interfaces",
        )


def say_trace(run: LLMRun) -> None:
    """A replay says what it replays, once, at its start."""
    settings = run.context.settings
    trace = run.context.trace()
    if trace is None:
        return
    facts = trace_facts(settings, trace)
    ideal = facts.get("ideal_prefix_cache_hit_rate")
    logger.info(
        "replaying %s (%s): %d requests over %.1f s at speed %g (%.2f req/s); an unbounded prefix cache would "
        "hold %s of its prompt tokens",
        trace.path,
        trace.format,
        len(trace.requests),
        trace.span_s / settings.load.trace_speed,
        settings.load.trace_speed,
        facts.get("rate") or 0.0,
        f"{ideal:.1%}" if isinstance(ideal, float) else "n/a (no hash ids)",
    )


def say_schedule(run: LLMRun) -> None:
    """An open loop's proof of the schedule: one line, and a warning line when it slipped."""
    proof = run.live.schedule_proof()
    if proof is None:
        return
    unit = run.context.settings.unit
    logger.info(
        "open loop: %d %s, scheduled %.2f/s, achieved %.2f, schedule lag p50/p99/max %.2f/%.2f/%.2f ms",
        proof.requests,
        unit,
        proof.scheduled_rate,
        proof.achieved_rate,
        proof.lag_p50_s * 1e3,
        proof.lag_p99_s * 1e3,
        proof.lag_max_s * 1e3,
    )
    if proof.warning():
        logger.warning(proof.warning())


class RampWatch:
    """Whether a test's users were all spawned before it stopped: ``users`` is how many there were as it
    stopped, None when all were (Locust's ``spawning_complete``)."""

    def __init__(self) -> None:
        self.spawned = False
        self.users: int | None = None

    def on_start(self, **_kw: object) -> None:
        self.spawned, self.users = False, None

    def on_spawned(self, **_kw: object) -> None:
        self.spawned = True

    def on_stopping(self, environment: Environment, **_kw: object) -> None:
        runner = environment.runner
        self.users = None if self.spawned or runner is None else runner.user_count


def say_unfinished_ramp(environment: Environment, run: LLMRun, users: int | None) -> None:
    """A closed loop that ended before all its users were spawned (``users``: how many there were as it
    stopped, None once all were) measured a smaller load than asked: say so in one line, with the spawn
    rate that would have reached it."""
    settings = run.context.settings
    options = settings.locust
    if users is None or not options.parsed or not run.context.started or not isinstance(settings.mode, ClosedLoop):
        return
    wanted = options.users or 0
    rate = float(options.spawn_rate or 1.0)
    took = time.time() - run.context.started
    # users that quit at the budget's end count too
    users = min(wanted, max(users, math.ceil(took * rate)))
    if wanted > 1 and users < wanted:
        logger.warning(
            "the run ended after %.0f s with about %d of its %d users: spawning them at -r %g a second takes %.0f s, so it "
            "measured a smaller load than asked; use -r %d (all at once) or a longer run",
            took,
            users,
            wanted,
            rate,
            wanted / rate,
            wanted,
        )


def say_warm_cache(run: LLMRun) -> None:
    """A cache warm from an earlier run makes a server look fast: say so in one line."""
    warm = run.live.warm_cache
    if warm:
        logger.warning(
            "%d requests found their prompt's own part already in the server's prefix cache: a cache warm from "
            "an earlier run with the same --seed, so TTFT looks better than a cold server's; use a new --seed or "
            "--reset-prefix-cache",
            warm,
        )


def summarize_and_judge(environment: Environment, prefix: str, settings: Settings) -> str:
    """At the end of the run, the summary of every row written (``PREFIX_summary.json``), and its ``--check``
    verdicts: a line per check, ``PREFIX_checks.xml``, and exit status 3 when one failed (unless the run
    already failed). Returns the results block for the terminal ("" when there is no summary)."""
    # pandas: loaded when needed only
    from reports.answers import answers
    from reports.checks import FAILED_STATUS, judge_and_write, parse_check
    from reports.load import ReportInputError, load_run
    from reports.summary import summary_of, write_summary
    from reports.terminal import results_block

    block, passed = "", True
    try:
        run = load_run(prefix)
        summary, _notes = summary_of(run, settings.measurement.slo)
        write_summary(prefix, summary)
        block = results_block(run.name, summary, answers(summary, settings.prompts.input_tokens))
        if settings.output.check:
            checks = [parse_check(text) for text in settings.output.check]
            passed = judge_and_write(run.name, prefix, summary, checks, settings.output.check_inconclusive == "pass")
    except (ReportInputError, OSError) as exc:
        if settings.output.check:
            say_error(f"--check: cannot judge the run: {exc}")
            passed = False
    if not passed and not environment.process_exit_code:
        environment.process_exit_code = FAILED_STATUS
    return block
