"""The run's settings: the suite's options by section, the load's mode, and the Locust options it reads.

``Settings.from_options`` is the one place the parsed options (Locust's namespace, or the web UI's form)
become typed values: each option's text parsed once, each checked, then the checks across options, then
the mode. It raises ConfigError with a single line that says what to fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from functools import cached_property
from typing import Any, TypeVar

from llmclient.errors import ConfigError
from scheduler.levels import PromptLevel
from scheduler.slo import goodput_as_slo
from users.settings.mode import Mode, load_mode, prompt_levels
from users.settings.option import typed_value
from users.settings.sections import (
    OPTIONS,
    EnergyOptions,
    LoadOptions,
    MeasurementOptions,
    OutputOptions,
    PromptOptions,
    ServerOptions,
    slo_of,
)

S = TypeVar("S")
# the dest of each option, to its name in messages
_NAMES = {o.dest: o.name for o in OPTIONS}


@dataclass(frozen=True)
class LocustOptions:
    """The options of Locust's own that the suite reads (the defaults: a test's bare Environment)."""

    users: int | None = None
    spawn_rate: float | None = None
    run_time: int | None = None
    headless: bool = False
    autostart: bool = False
    autoquit: int | None = -1
    csv_prefix: str | None = None
    host: str | None = None
    web_host: str = ""
    web_port: int | None = None
    web_login: bool = False
    web_base_path: str = ""
    master_bind_port: int | None = None
    processes: int | None = None
    worker: bool = False
    # the user classes named on the command line
    user_classes: tuple[str, ...] = ()
    # a real locust process parsed them (not an Environment a test built)
    parsed: bool = False

    @classmethod
    def of(cls, namespace: object) -> LocustOptions:
        """From Locust's parsed options (None: none were parsed)."""
        if namespace is None:
            return cls()
        names = {f.name for f in fields(cls)} - {"users", "parsed"}
        given = {name: getattr(namespace, name) for name in names if getattr(namespace, name, None) is not None}
        given["user_classes"] = tuple(given.get("user_classes") or ())
        return cls(users=getattr(namespace, "num_users", None), parsed=True, **given)


@dataclass(frozen=True)
class Settings:
    """The suite's validated options, by section, and the load's mode."""

    load: LoadOptions
    prompts: PromptOptions
    server: ServerOptions
    measurement: MeasurementOptions
    output: OutputOptions
    energy: EnergyOptions
    mode: Mode
    locust: LocustOptions

    @classmethod
    def from_options(cls, options: object) -> Settings:
        """Check parsed options (Locust's namespace, or any object with the attributes)."""
        values = {o.dest: typed_value(o, getattr(options, o.dest, None), _NAMES.__getitem__) for o in OPTIONS}
        _fill_in(values)
        locust = LocustOptions.of(options)
        if locust.users is not None and locust.users <= 0 and locust.headless:
            raise ConfigError(f"-u/--users must be at least 1, got {locust.users}")
        load, prompts, server = (
            _section(LoadOptions, values),
            _section(PromptOptions, values),
            _section(ServerOptions, values),
        )
        measurement, output = _section(MeasurementOptions, values), _section(OutputOptions, values)
        energy = _section(EnergyOptions, values)
        _check_prompts(prompts, server)
        _check_sessions(load, prompts)
        if (energy.gpu_hour_cost is None) != (energy.gpus is None):
            raise ConfigError("--gpu-hour-cost and --gpus go together: the cost is the GPUs' hours at that price")
        mode = load_mode(load, prompts, measurement, locust.users)
        return cls(load, prompts, server, measurement, output, energy, mode, locust)

    @property
    def total_requests(self) -> int | None:
        """What the run counts: -n requests, or --sessions sessions (levels count their own)."""
        return None if self.mode.levels else self.load.sessions or self.load.num_requests

    @property
    def counts_sessions(self) -> bool:
        """--sessions N: the run's budget is in sessions (a session's first turn takes one, its last ends it)."""
        return self.load.sessions is not None and not self.mode.levels

    @property
    def unit(self) -> str:
        """What the run counts and schedules: "sessions" (--sessions, or sessions arriving), else "requests"."""
        return "sessions" if self.counts_sessions or (self.mode.scheduled and self.in_sessions) else "requests"

    @property
    def in_sessions(self) -> bool:
        """Requests come in sessions: of several turns, or arriving at --session-rate."""
        return self.prompts.in_sessions or self.load.session_rate is not None

    @cached_property
    def prompt_levels(self) -> tuple[PromptLevel, ...]:
        """A sweep of the prompts' sharing: each level's own prompts; () otherwise."""
        return prompt_levels(self.mode, self.prompts)

    @property
    def ignores_eos(self) -> bool:
        """--ignore-eos, or a trace's exact output lengths."""
        return self.prompts.ignore_eos or bool(self.load.trace)

    def config(self) -> dict[str, Any]:
        """Every option under its name, as the run's config file writes it (the API key left out), and the mode."""
        out: dict[str, Any] = {"mode": self.mode.name}
        for section in (self.load, self.prompts, self.server, self.measurement, self.output, self.energy):
            for f in fields(section):
                out[f.name] = f.metadata["option"].shown(getattr(section, f.name))
        del out["api_key"]
        out["api_key_set"] = self.server.api_key is not None
        return out

    def with_model(self, model: str) -> Settings:
        """The same settings asking for ``model``."""
        return replace(self, server=replace(self.server, model=model))


def _section(section: type[S], values: dict[str, Any]) -> S:
    """A section from the options' typed values."""
    return section(**{f.name: values[f.name] for f in fields(section)})  # type: ignore[arg-type]


def _fill_in(values: dict[str, Any]) -> None:
    """What one option gives for another: the key from $OPENAI_API_KEY, --goodput as the --slo."""
    values["api_key"] = values["api_key"] or os.environ.get("OPENAI_API_KEY") or None
    if values["goodput"]:
        if values["slo"]:
            raise ConfigError("--slo and --goodput both set the SLO: give one")
        values["slo"] = slo_of(goodput_as_slo(values["goodput"]))
    # spans are joined by the trace ids the requests carry
    if values["otlp_port"] is not None:
        values["trace_context"] = True


def _check_prompts(prompts: PromptOptions, server: ServerOptions) -> None:
    """What the prompts need: a unique suffix, and an endpoint that carries them."""
    prefix, total = prompts.prefix_tokens, prompts.input_tokens
    if prefix and prefix >= total:
        raise ConfigError(
            f"--prefix-tokens ({prefix}) must be smaller than --input-tokens ({total}): each request needs a unique suffix"
        )
    if prompts.images and server.endpoint not in ("chat", "responses"):
        raise ConfigError(
            f"--images needs --endpoint chat or responses (images are message parts), not {server.endpoint}"
        )
    if prompts.embed_batch > 1 and server.endpoint != "embeddings":
        raise ConfigError("--embed-batch needs --endpoint embeddings (only an embeddings request takes a list)")
    if prompts.in_sessions and server.endpoint != "chat":
        raise ConfigError("--turns needs --endpoint chat (conversations are chat messages)")


def _check_sessions(load: LoadOptions, prompts: PromptOptions) -> None:
    """What counts sessions and what only sessions use."""
    if load.sessions is not None and load.num_requests is not None:
        raise ConfigError("-n counts requests and --sessions counts sessions: give one")
    in_sessions = prompts.in_sessions or load.session_rate is not None
    if not in_sessions:
        for flag, given in (("--sessions", load.sessions), ("--session-header", load.session_header)):
            if given:
                raise ConfigError(f"{flag} needs sessions: give --turns K, --session-file or --session-rate")
