"""The load's mode: how a run's requests are sent, one type per way, built once from the options.

- ``ClosedLoop``: ``-u`` users, each sending its next request when its last one ends;
- ``UserStages``: a closed loop in steps (``--stages`` in user counts, run by Locust's LoadTestShape);
- ``OpenLoop``: arrivals at a rate (``--request-rate``, ``--ramp-up``, ``--stages`` in rates);
- ``TraceReplay``: a trace's arrivals and lengths (``--trace``);
- ``Sweep``, ``FindCapacity``, ``Repetitions``: levels (``--sweep``, ``--find-capacity``, ``--repeat``
  without a sweep), each level's load set by the level.

``load_mode`` checks that the options name one of them, and says in one line what to change when not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from llmclient.errors import ConfigError
from scheduler.arrivals import ConstantRate, Ramp, RateProfile, Stage, Stages
from scheduler.levels import (
    AT_ONE_LOAD,
    PROMPT_KINDS,
    AutoSweep,
    CapacitySearch,
    ExplicitSweep,
    Plan,
    PromptLevel,
    SweepSpec,
    prompt_set,
)
from users.settings.sections import LoadOptions, MeasurementOptions, PromptOptions

# the throughput level's concurrency without --max-concurrency (vLLM's max_num_seqs)
SATURATING_CONCURRENCY = 256


@dataclass(frozen=True)
class Mode:
    """How the run's requests are sent."""

    # the schedule sends the requests, not Locust's users
    scheduled: ClassVar[bool] = False
    # one schedule of arrivals for the whole run (not levels)
    one_schedule: ClassVar[bool] = False
    # levels, each with a load of its own
    levels: ClassVar[bool] = False
    # the mode's name in the run's config
    name: ClassVar[str] = ""

    @property
    def stages(self) -> tuple[Stage, ...]:
        """Numbered stages (each row's ``stage``); () without stages."""
        return ()

    @property
    def user_stages(self) -> tuple[Stage, ...] | None:
        """A closed loop's steps, run by Locust's LoadTestShape; None for every other mode."""
        return None

    def plan(self) -> Plan | None:
        """A fresh plan of levels for one test (a capacity search keeps state), or None."""
        return None


@dataclass(frozen=True)
class ClosedLoop(Mode):
    """``-u`` users, each sending its next request as soon as its last one ends (``--turns``: conversations)."""

    name: ClassVar[str] = "closed loop"


@dataclass(frozen=True)
class UserStages(Mode):
    """A closed loop in steps: each stage's user count for its duration."""

    steps: tuple[Stage, ...]
    name: ClassVar[str] = "user stages"

    @property
    def stages(self) -> tuple[Stage, ...]:
        return self.steps

    @property
    def user_stages(self) -> tuple[Stage, ...]:
        return self.steps


@dataclass(frozen=True)
class OpenLoop(Mode):
    """Arrivals at the profile's rate, whatever earlier requests do."""

    profile: RateProfile
    # each arrival is a session (--session-rate), not a request
    sessions: bool = False
    scheduled: ClassVar[bool] = True
    one_schedule: ClassVar[bool] = True
    name: ClassVar[str] = "open loop"

    @property
    def stages(self) -> tuple[Stage, ...]:
        return self.profile.stages if isinstance(self.profile, Stages) else ()


@dataclass(frozen=True)
class TraceReplay(Mode):
    """A trace's requests, at its times (scaled by its speed) and with its lengths."""

    scheduled: ClassVar[bool] = True
    one_schedule: ClassVar[bool] = True
    name: ClassVar[str] = "trace replay"


@dataclass(frozen=True)
class Levels(Mode):
    """Levels, each running ``duration`` seconds or ``requests`` requests (whichever ends first)."""

    duration: float | None
    requests: int | None
    # the throughput level's requests in flight
    saturating: int
    scheduled: ClassVar[bool] = True
    levels: ClassVar[bool] = True

    def plan(self) -> Plan:
        raise NotImplementedError


@dataclass(frozen=True)
class Sweep(Levels):
    """``--sweep``: levels of one kind; prompt levels run at ``rate`` or ``concurrency`` in flight."""

    spec: SweepSpec
    rate: float | None = None
    concurrency: int | None = None
    repeat: int = 1
    name: ClassVar[str] = "sweep"

    def plan(self) -> Plan:
        kind, values = self.spec
        if kind == "auto":
            return AutoSweep(self.saturating)
        if kind not in AT_ONE_LOAD:
            return ExplicitSweep(kind, values, repeat=self.repeat)
        # levels at one load without a rate: --max-concurrency in flight
        closed = self.rate is None
        return ExplicitSweep(kind, values, self.rate, self.concurrency if closed else None, self.repeat)


@dataclass(frozen=True)
class FindCapacity(Levels):
    """``--find-capacity``: rate levels that close in on the highest rate meeting the SLO at ``attainment``."""

    attainment: float = 0.99
    name: ClassVar[str] = "capacity search"

    def plan(self) -> Plan:
        return CapacitySearch(self.attainment, self.saturating)


@dataclass(frozen=True)
class Repetitions(Levels):
    """``--repeat K`` without a sweep: one steady load (a rate, or a concurrency) repeated ``times`` times."""

    kind: str = "rate"
    value: float = 1.0
    times: int = 1
    name: ClassVar[str] = "repetitions"

    def plan(self) -> Plan:
        return ExplicitSweep(self.kind, (self.value,), repeat=self.times)


def prompt_levels(mode: Mode, prompts: PromptOptions) -> tuple[PromptLevel, ...]:
    """A sweep of the prompts' sharing (prefix-groups or prefix-tokens): each level's own prompts; () otherwise."""
    if not isinstance(mode, Sweep) or mode.spec.kind not in PROMPT_KINDS:
        return ()
    kind, values = mode.spec
    if kind == "prefix-groups":
        return tuple(PromptLevel(str(prompt_set(kind, v)), prompts.prefix_tokens, int(v)) for v in values)
    return tuple(PromptLevel(str(prompt_set(kind, v)), int(v), prompts.prefix_groups) for v in values)


def load_mode(load: LoadOptions, prompts: PromptOptions, measurement: MeasurementOptions, users: int | None) -> Mode:
    """The one mode the options name (raises ConfigError, one line, when they name none or several)."""
    profile = _open_loop(load, prompts)
    if not load.trace:
        unset = LoadOptions()
        for flag, given, default in (
            ("--trace-speed", load.trace_speed, unset.trace_speed),
            ("--trace-format", load.trace_format, unset.trace_format),
        ):
            if given != default:
                raise ConfigError(f"{flag} needs --trace FILE")
    if load.repeat > 1 and not (load.sweep or load.find_capacity):
        return _repetitions(load, prompts, users)
    if load.sweep or load.find_capacity:
        return _levels(load, prompts, measurement)
    _check_not_levels(load, measurement)
    if load.trace:
        _check_trace(load, prompts)
        return TraceReplay()
    if profile is not None:
        return OpenLoop(profile, sessions=load.session_rate is not None or prompts.in_sessions)
    if load.stages:
        return UserStages(load.stages)
    return ClosedLoop()


def _open_loop(load: LoadOptions, prompts: PromptOptions) -> RateProfile | None:
    """The arrival rate profile the options give (one way at a time), or None."""
    rate_stages = bool(load.stages) and load.stages[0].rate is not None
    given = (("--request-rate", load.request_rate), ("--ramp-up", load.ramp_up), ("--session-rate", load.session_rate))
    ways = [flag for flag, on in given if on]
    ways += ["--stages"] if rate_stages else []
    if len(ways) > 1:
        raise ConfigError(f"{' and '.join(ways)} both set the arrival rate: give one")
    if load.stages and not rate_stages and ways:
        raise ConfigError(f"--stages with user counts is a closed loop in steps: drop {ways[0]}")
    if load.ramp_up:
        start, end = load.ramp_up_start, load.ramp_up_end
        if start is None or end is None:
            raise ConfigError("--ramp-up needs --ramp-up-start and --ramp-up-end (requests per second)")
        if load.ramp_up == "exponential" and not start > 0:
            raise ConfigError("--ramp-up exponential needs --ramp-up-start above 0")
        if not load.num_requests:
            raise ConfigError("--ramp-up climbs over the run's requests: give -n")
    elif load.ramp_up_start is not None or load.ramp_up_end is not None:
        raise ConfigError("--ramp-up-start and --ramp-up-end need --ramp-up linear|exponential")
    if not ways and load.max_concurrency is not None and not (load.sweep or load.find_capacity or load.trace):
        raise ConfigError(
            "--max-concurrency caps an open loop: give --request-rate, --session-rate, --ramp-up, --stages or --trace "
            "(-u is the concurrency of a closed loop)"
        )
    # sessions arrive at a rate, or in stages of rates (sessions per second)
    if ways and prompts.in_sessions and load.session_rate is None and ways != ["--stages"]:
        raise ConfigError(
            f"sessions arrive at --session-rate R (sessions per second), --stages in rates, or run in a closed "
            f"loop: drop {ways[0]}"
        )
    if (load.session_rate is not None or (prompts.in_sessions and rate_stages)) and load.num_requests:
        raise ConfigError("sessions arriving at a rate are counted in sessions: give --sessions N, not -n")
    if load.session_rate is not None:
        return ConstantRate(load.session_rate)
    if load.request_rate is not None:
        return ConstantRate(load.request_rate)
    if load.ramp_up and load.ramp_up_start is not None and load.ramp_up_end is not None and load.num_requests:
        return Ramp(load.ramp_up, load.ramp_up_start, load.ramp_up_end, load.num_requests)
    return Stages(load.stages) if rate_stages else None


def _check_trace(load: LoadOptions, prompts: PromptOptions) -> None:
    """A trace sets the arrivals and each request's lengths itself."""
    for other, given in (
        ("--request-rate", load.request_rate),
        ("--ramp-up", load.ramp_up),
        ("--stages", load.stages),
        ("--dataset", prompts.dataset),
        ("--turns", prompts.turns.most > 1),
        ("--session-file", prompts.session_file),
    ):
        if given:
            raise ConfigError(f"--trace sets when each request is sent and its lengths: drop {other}")


def _check_not_levels(load: LoadOptions, measurement: MeasurementOptions) -> None:
    """What only levels, or only a trace, can use."""
    if load.level_duration is not None or load.level_requests is not None:
        raise ConfigError("--level-duration and --level-requests need --sweep or --find-capacity")
    if measurement.profile_level is not None:
        raise ConfigError("--profile-level needs --sweep or --find-capacity (a run without levels: --profile)")


def _levels(load: LoadOptions, prompts: PromptOptions, measurement: MeasurementOptions) -> Levels:
    """A sweep or a capacity search: its own levels set the load, and it needs to know how long each runs."""
    if load.sweep and load.find_capacity:
        raise ConfigError("--sweep and --find-capacity each plan the run's levels: give one")
    if load.find_capacity and not measurement.slo:
        raise ConfigError("--find-capacity needs --slo (e.g. --slo ttft_ms=2000,tpot_ms=100)")
    if load.repeat > 1 and (load.find_capacity or (load.sweep is not None and load.sweep.kind == "auto")):
        raise ConfigError(
            "--repeat repeats the levels of an explicit sweep: --sweep auto and --find-capacity choose theirs as they go"
        )
    flag = "--sweep" if load.sweep else "--find-capacity"
    if load.level_duration is None and load.level_requests is None:
        raise ConfigError(f"{flag} needs --level-duration S or --level-requests N (how long each level runs)")
    by_prompts = load.sweep is not None and load.sweep.kind in PROMPT_KINDS
    by_think = load.sweep is not None and load.sweep.kind == "think-time"
    if load.sweep is not None and by_prompts:
        _check_prompt_levels(load, prompts, load.sweep)
    if by_think:
        _check_think_levels(load, prompts)
    for other, given in (
        ("--request-rate", load.request_rate and not by_prompts),
        ("--session-rate", load.session_rate and not by_think),
        ("--ramp-up", load.ramp_up),
        ("--stages", load.stages),
        ("-n", load.num_requests),
    ):
        if given:
            raise ConfigError(f"{flag} sets the load level by level: drop {other}")
    if prompts.in_sessions and not by_think:
        raise ConfigError(f"{flag} needs single-turn requests (or --sweep think-time:…): drop --turns")
    if load.trace:
        raise ConfigError(f"--trace sets when each request is sent and its lengths: drop {flag}")
    saturating = load.max_concurrency or SATURATING_CONCURRENCY
    if load.sweep is None:
        return FindCapacity(load.level_duration, load.level_requests, saturating, measurement.slo_attainment)
    return Sweep(
        load.level_duration,
        load.level_requests,
        saturating,
        load.sweep,
        load.session_rate if by_think else load.request_rate,
        load.max_concurrency,
        load.repeat,
    )


def _check_think_levels(load: LoadOptions, prompts: PromptOptions) -> None:
    """Levels that differ in the gap between a session's turns: sessions, at one load."""
    if not prompts.in_sessions:
        raise ConfigError("--sweep think-time needs sessions of more than one turn: give --turns K (2 or more)")
    if load.session_rate is None and load.max_concurrency is None:
        raise ConfigError(
            "--sweep think-time runs its levels at one load: give --session-rate R or --max-concurrency C "
            "(C sessions at a time)"
        )
    if load.num_requests or load.sessions:
        raise ConfigError("--sweep think-time sets each level's sessions by --level-duration: drop -n/--sessions")


def _check_prompt_levels(load: LoadOptions, prompts: PromptOptions, sweep: SweepSpec) -> None:
    """Levels that differ in their prompts: synthetic ones, at one load."""
    kind = sweep.kind
    if prompts.dataset:
        raise ConfigError(f"--sweep {kind} builds synthetic prompts: drop --dataset")
    if kind == "prefix-groups":
        if load.request_rate is None:
            raise ConfigError("--sweep prefix-groups runs its levels at one rate: give --request-rate R")
        if not prompts.prefix_tokens:
            raise ConfigError("--sweep prefix-groups needs --prefix-tokens P (the shared prefixes' length)")
        return
    if load.request_rate is None and load.max_concurrency is None:
        raise ConfigError(
            "--sweep prefix-tokens runs its levels at one load: give --max-concurrency C (a closed "
            "loop of C in flight) or --request-rate R"
        )
    if prompts.prefix_tokens:
        raise ConfigError("--sweep prefix-tokens sets each level's shared tokens: drop --prefix-tokens")
    longest = max(sweep.values)
    if longest >= prompts.input_tokens:
        raise ConfigError(
            f"--sweep prefix-tokens: {longest:g} shared tokens need a longer --input-tokens "
            f"({prompts.input_tokens}): each request needs a unique suffix"
        )


def _repetitions(load: LoadOptions, prompts: PromptOptions, users: int | None) -> Repetitions:
    """``--repeat K`` without a sweep: the workload's one level (its -u in flight, a closed loop, or its
    --request-rate) repeated K times, -n requests (or --level-duration seconds) each."""
    for flag, given in (
        ("--ramp-up", load.ramp_up),
        ("--stages", load.stages),
        ("--trace", load.trace),
        ("--turns", prompts.in_sessions),
    ):
        if given:
            raise ConfigError(f"--repeat repeats one steady load: drop {flag}")
    if load.level_requests is not None:
        raise ConfigError("--repeat without --sweep: -n N gives each repetition's requests (drop --level-requests)")
    if not load.num_requests and load.level_duration is None:
        raise ConfigError("--repeat K needs -n N (requests in each repetition) or --level-duration S")
    saturating = load.max_concurrency or SATURATING_CONCURRENCY
    if load.request_rate is not None:
        return Repetitions(load.level_duration, load.num_requests, saturating, "rate", load.request_rate, load.repeat)
    return Repetitions(load.level_duration, load.num_requests, saturating, "concurrency", users or 1, load.repeat)
