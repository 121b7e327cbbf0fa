import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from llmclient.errors import ConfigError
from scheduler.levels import Level, LevelResult
from tests.procs import ROOT
from users.settings.mode import OpenLoop, Repetitions
from users.settings.settings import Settings


def opts(**kw):
    base = dict(
        num_requests=None,
        model="",
        max_tokens=512,
        input_tokens=2048,
        ignore_eos=False,
        temperature=None,
        endpoint="chat",
        api_key=None,
        stream_timeout=600.0,
        request_timeout=None,
        seed=0,
        num_users=1,
        headless=True,
    )
    base.update(kw)
    return SimpleNamespace(**base)


def test_defaults_are_the_seed_scenario():
    s = Settings.from_options(opts())
    assert (s.prompts.max_tokens, s.prompts.input_tokens, s.server.endpoint, s.load.num_requests) == (
        512,
        2048,
        "chat",
        None,
    )


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"num_requests": 0}, "-n/--num-requests must be a positive number of requests, got 0"),
        ({"num_requests": -5}, "-n/--num-requests must be a positive number of requests, got -5"),
        ({"num_users": 0}, "-u/--users must be at least 1, got 0"),
        ({"max_tokens": 0}, "--max-tokens must be at least 1, got 0"),
        ({"stream_timeout": 0.0}, "--stream-timeout must be positive, got 0"),
        ({"embed_batch": 4}, "--embed-batch needs --endpoint embeddings (only an embeddings request takes a list)"),
        ({"gpu_hour_cost": 2.5}, "--gpu-hour-cost and --gpus go together: the cost is the GPUs' hours at that price"),
        ({"gpus": 8}, "--gpu-hour-cost and --gpus go together: the cost is the GPUs' hours at that price"),
        ({"profile_level": 2}, "--profile-level needs --sweep or --find-capacity (a run without levels: --profile)"),
        (
            {"telemetry_url": ["localhost:9400"]},
            "--telemetry-url takes an exporter's page, http://HOST:PORT/metrics, got 'localhost:9400'",
        ),
        ({"otlp_port": 0}, "--otlp-port must be at least 1, got 0"),
    ],
)
def test_bad_values_give_one_clear_line(kw, message):
    with pytest.raises(ConfigError) as err:
        Settings.from_options(opts(**kw))
    assert str(err.value) == message


def test_otlp_port_sends_the_trace_context_it_joins_by():
    assert Settings.from_options(opts(otlp_port=4318)).measurement.trace_context is True
    assert Settings.from_options(opts()).measurement.trace_context is False


def test_api_key_falls_back_to_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert Settings.from_options(opts()).server.api_key == "sk-env"
    assert Settings.from_options(opts(api_key="sk-flag")).server.api_key == "sk-flag"


def test_text_from_the_web_ui_form_is_converted_or_refused_in_one_line():
    s = Settings.from_options(opts(request_rate="20", burstiness="inf", max_concurrency="4", max_tokens="64"))
    assert (s.load.request_rate, s.load.burstiness, s.load.max_concurrency, s.prompts.max_tokens) == (
        20.0,
        float("inf"),
        4,
        64,
    )
    empty = Settings.from_options(opts(num_requests="", request_rate="", ignore_eos="false", insecure="true"))
    assert (empty.load.num_requests, empty.load.request_rate, empty.prompts.ignore_eos, empty.server.insecure) == (
        None,
        None,
        False,
        True,
    )
    with pytest.raises(ConfigError, match="--request-rate: expected a number, got 'fast'"):
        Settings.from_options(opts(request_rate="fast"))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"sweep": "rate:1,2"}, "--sweep needs --level-duration S or --level-requests N (how long each level runs)"),
        (
            {"find_capacity": True, "level_duration": 10.0},
            "--find-capacity needs --slo (e.g. --slo ttft_ms=2000,tpot_ms=100)",
        ),
        (
            {"sweep": "auto", "find_capacity": True, "slo": "ttft_ms=1"},
            "--sweep and --find-capacity each plan the run's levels: give one",
        ),
        (
            {"sweep": "rate:1", "level_requests": 10, "request_rate": 5.0},
            "--sweep sets the load level by level: drop --request-rate",
        ),
        (
            {"sweep": "rate:1", "level_requests": 10, "num_requests": 50},
            "--sweep sets the load level by level: drop -n",
        ),
        ({"level_duration": 10.0}, "--level-duration and --level-requests need --sweep or --find-capacity"),
        ({"sweep": "rate:fast", "level_requests": 10}, "--sweep rate: 'fast' is not a number"),
        ({"slo": "latency=5"}, "--slo takes ttft_ms=…,tpot_ms=…,e2el_ms=… (milliseconds); got 'latency=5'"),
        ({"slo_attainment": 1.5}, "--slo-attainment must be above 0 and at most 1, got 1.5"),
        ({"sweep": "rate:1", "level_duration": 0.0}, "--level-duration must be positive, got 0"),
        (
            {"sweep": "prefix-groups:1,4", "level_requests": 10, "prefix_tokens": 64},
            "--sweep prefix-groups runs its levels at one rate: give --request-rate R",
        ),
        (
            {"sweep": "prefix-groups:1,4", "level_requests": 10, "request_rate": 5.0},
            "--sweep prefix-groups needs --prefix-tokens P (the shared prefixes' length)",
        ),
        (
            {"sweep": "prefix-tokens:0,1536", "level_requests": 10},
            "--sweep prefix-tokens runs its levels at one load: give --max-concurrency C (a closed loop of C in flight) or --request-rate R",
        ),
        (
            {"sweep": "prefix-tokens:0,1536", "level_requests": 10, "max_concurrency": 8, "prefix_tokens": 64},
            "--sweep prefix-tokens sets each level's shared tokens: drop --prefix-tokens",
        ),
        (
            {"sweep": "prefix-tokens:0,2048", "level_requests": 10, "max_concurrency": 8},
            "--sweep prefix-tokens: 2048 shared tokens need a longer --input-tokens (2048): each request needs a unique suffix",
        ),
        (
            {"sweep": "prefix-tokens:0,1.5", "level_requests": 10, "max_concurrency": 8},
            "--sweep prefix-tokens levels are whole numbers, got 1.5",
        ),
        ({"sweep": "rate:0,2", "level_requests": 10}, "--sweep rate levels must be positive, got 0"),
        ({"repeat": 0}, "--repeat must be at least 1, got 0"),
        ({"repeat": 2}, "--repeat K needs -n N (requests in each repetition) or --level-duration S"),
        ({"repeat": 2, "num_requests": 10, "stages": "10s:2"}, "--repeat repeats one steady load: drop --stages"),
        (
            {"repeat": 2, "find_capacity": True, "slo": "ttft_ms=5", "level_duration": 5.0},
            "--repeat repeats the levels of an explicit sweep: --sweep auto and --find-capacity choose theirs as they go",
        ),
        ({"trace_speed": 2.0}, "--trace-speed needs --trace FILE"),
        (
            {"trace": __file__, "sweep": "rate:1", "level_requests": 10},
            "--trace sets when each request is sent and its lengths: drop --sweep",
        ),
        ({"trace": __file__, "turns": "2"}, "--trace sets when each request is sent and its lengths: drop --turns"),
        (
            {"turns": "2", "request_rate": 4.0},
            "sessions arrive at --session-rate R (sessions per second), --stages in rates, or run in a closed loop: drop --request-rate",
        ),
        (
            {"session_rate": 2.0, "num_requests": 10},
            "sessions arriving at a rate are counted in sessions: give --sessions N, not -n",
        ),
        (
            {"turns": "2", "stages": "10s:2", "num_requests": 10},
            "sessions arriving at a rate are counted in sessions: give --sessions N, not -n",
        ),
        (
            {"turns": "3", "sessions": 4, "num_requests": 10},
            "-n counts requests and --sessions counts sessions: give one",
        ),
        ({"sessions": 4}, "--sessions needs sessions: give --turns K, --session-file or --session-rate"),
        (
            {"session_header": "x-session-id"},
            "--session-header needs sessions: give --turns K, --session-file or --session-rate",
        ),
        ({"turns": "uniform:1"}, "--turns takes S, exp:MEAN or uniform:LO,HI; got 'uniform:1'"),
        ({"think_time": "exp:-1"}, "--think-time needs 0 <= LO <= HI; got 'exp:-1'"),
        (
            {"sweep": "think-time:1,10", "level_duration": 5.0, "session_rate": 2.0},
            "--sweep think-time needs sessions of more than one turn: give --turns K (2 or more)",
        ),
        (
            {"sweep": "think-time:1,10", "level_duration": 5.0, "turns": "2"},
            "--sweep think-time runs its levels at one load: give --session-rate R or --max-concurrency C (C sessions at a time)",
        ),
        (
            {"sweep": "rate:1,2", "level_duration": 5.0, "turns": "2"},
            "--sweep needs single-turn requests (or --sweep think-time:…): drop --turns",
        ),
        ({"turns": "2", "endpoint": "completions"}, "--turns needs --endpoint chat (conversations are chat messages)"),
        ({"trace": "/no/such/trace.jsonl"}, "--trace /no/such/trace.jsonl: no such file"),
    ],
)
def test_bad_sweep_settings_give_one_clear_line(kw, message):
    with pytest.raises(ConfigError) as err:
        Settings.from_options(opts(**kw))
    assert str(err.value) == message


def test_a_sweep_plans_its_levels_and_lets_users_idle():
    s = Settings.from_options(opts(sweep="concurrency:1,8", level_requests=20, max_concurrency=16))
    assert s.mode.scheduled and s.mode.levels and not isinstance(s.mode, OpenLoop)
    plan = s.mode.plan()
    assert plan is not None and plan.next_level([]).value == 1
    cliff = Settings.from_options(
        opts(sweep="prefix-groups:1,8", level_requests=20, request_rate=4.0, prefix_tokens=64)
    )
    assert cliff.mode.levels and not cliff.mode.one_schedule and [lv.groups for lv in cliff.prompt_levels] == [1, 8]
    assert cliff.mode.plan().next_level([]) == Level(1, "prefix-groups", 1.0, rate=4.0)
    speedup = Settings.from_options(opts(sweep="prefix-tokens:0,1536", level_requests=20, max_concurrency=8))
    assert [(lv.name, lv.prefix_tokens) for lv in speedup.prompt_levels] == [
        ("prefix-tokens:0", 0),
        ("prefix-tokens:1536", 1536),
    ]
    first = speedup.mode.plan().next_level([])
    assert first == Level(1, "prefix-tokens", 0.0, concurrency=8) and not first.open_loop and first.in_flight == 8
    twice = Settings.from_options(opts(sweep="rate:1,2", level_requests=5, repeat=2)).mode.plan()
    order, results = [], []
    while (level := twice.next_level(results)) is not None:
        order.append((level.value, level.repeat))
        results.append(LevelResult(level, 5, 5, 1.0))
    # interleaved: A B A B
    assert order == [(1.0, 1), (2.0, 1), (1.0, 2), (2.0, 2)]
    whole = Settings.from_options(opts(num_requests=50, repeat=3, num_users=16, headless=True))
    assert isinstance(whole.mode, Repetitions) and whole.total_requests is None and whole.mode.requests == 50
    assert whole.mode.plan().next_level([]) == Level(1, "concurrency", 16.0, repeat=1)
    capacity = Settings.from_options(opts(find_capacity=True, slo="ttft_ms=500", level_duration=5.0))
    # the throughput level, without --max-concurrency
    assert capacity.mode.plan().next_level([]).value == 256


def parsed(*argv: str) -> Settings:
    """The suite's options as Locust's own parser reads them from a command line."""
    from locust import events
    from locust.argument_parser import parse_options

    from users.settings.parser import add_options

    events.init_command_line_parser.add_listener(add_options)
    try:
        return Settings.from_options(parse_options(["-f", "locustfile.py", "--headless", *argv]))
    finally:
        events.init_command_line_parser.remove_listener(add_options)


def test_vllm_bench_serves_spellings_are_the_same_options():
    ours = parsed(
        "-n",
        "5",
        "--input-tokens",
        "300",
        "--max-tokens",
        "20",
        "--prefix-tokens",
        "100",
        "--slo",
        "ttft_ms=500,tpot_ms=50",
        "--endpoint",
        "completions",
        "--ramp-up",
        "linear",
        "--ramp-up-start",
        "1",
        "--ramp-up-end",
        "4",
    )
    theirs = parsed(
        "--num-prompts",
        "5",
        "--random-input-len",
        "300",
        "--random-output-len",
        "20",
        "--random-prefix-len",
        "100",
        "--goodput",
        "ttft:500",
        "tpot:50",
        "--endpoint",
        "/v1/completions",
        "--ramp-up-strategy",
        "linear",
        "--ramp-up-start-rps",
        "1",
        "--ramp-up-end-rps",
        "4",
    )
    assert theirs.measurement.goodput == ("ttft:500", "tpot:50")
    assert {**theirs.config(), "goodput": []} == {**ours.config(), "goodput": []}
    assert theirs.measurement.slo == ours.measurement.slo == {"ttft_ms": 500.0, "tpot_ms": 50.0}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--goodput", "ttft:500", "--slo", "ttft_ms=500"), "--slo and --goodput both set the SLO: give one"),
        (
            ("--goodput", "ttft=500"),
            "--goodput takes KEY:MS with KEY ttft, tpot or e2el (as vllm bench serve); got 'ttft=500'",
        ),
        (("--goodput", "tpot:-1"), "--goodput tpot_ms must be positive, got -1"),
    ],
)
def test_a_bad_goodput_is_one_line(argv, message):
    with pytest.raises(ConfigError) as err:
        parsed(*argv)
    assert str(err.value) == message


def test_help_puts_each_option_in_a_titled_group_with_its_default_and_environment_variable():
    from users.settings.sections import SECTIONS

    titles = [section.__doc__ for section in SECTIONS]
    proc = subprocess.run(
        [sys.executable, "-m", "users", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    text = proc.stdout
    for title in titles:
        assert f"\n{title}:\n" in text
    load = text.split("LLM load: how requests are sent:")[1].split("\n\n")[0]
    assert "--burstiness X" in load and "[default 1.0; env LOCUST_BURSTINESS]" in load
    # no empty choice shown
    assert "--ramp-up linear|exponential, --ramp-up-strategy linear|exponential" in load
    assert "prefix-groups:G1" in text and "DURATION:USERSu" in text
    assert "[env OPENAI_API_KEY]" in text
    # a default of 0 is said (0 == False)
    assert "--seed N" in text and "[default 0; env LOCUST_SEED]" in text


def test_locusts_own_help_lists_the_suites_options():
    locust = os.path.join(os.path.dirname(sys.executable), "locust")
    proc = subprocess.run(
        [locust, "-f", "locustfile.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert (
        proc.returncode == 0 and "--find-capacity" in proc.stdout and "LLM load: how requests are sent:" in proc.stdout
    )


def test_sessions_at_a_rate_are_an_open_loop_of_sessions_and_a_think_time_sweep_runs_at_one_load():
    rate = Settings.from_options(opts(turns="3", session_rate=2.0, sessions=10))
    assert isinstance(rate.mode, OpenLoop) and rate.mode.sessions and rate.total_requests == 10
    assert rate.counts_sessions and rate.unit == "sessions"
    staged = Settings.from_options(opts(turns="3", stages="10s:2,10s:4"))
    assert isinstance(staged.mode, OpenLoop) and staged.mode.sessions and staged.unit == "sessions"
    closed = Settings.from_options(opts(turns="3", num_requests=10))
    assert not closed.counts_sessions and closed.unit == "requests" and closed.in_sessions
    sweep = Settings.from_options(opts(turns="2", sweep="think-time:0,5", level_duration=5.0, session_rate=2.0))
    first = sweep.mode.plan().next_level([])
    assert first == Level(1, "think-time", 0.0, rate=2.0) and first.open_loop and first.think_time == 0.0
    held = Settings.from_options(opts(turns="2", sweep="think-time:5", level_duration=5.0, max_concurrency=4))
    level = held.mode.plan().next_level([])
    assert (
        not level.open_loop
        and level.in_flight == 4
        and level.label == "level 1: think time 5 s at 4 sessions in flight"
    )
