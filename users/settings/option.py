"""An option of the suite, declared once: a field of its section (sections.py) made by ``option``.

The field's name is the option's name in Locust's namespace; its metadata holds the rest (flags, kind,
default, help, environment variable, checks, and how the text becomes the field's typed value). The
parser (parser.py) registers each option on Locust's parser from it; ``typed_value`` turns what Locust
parsed (or the web UI's form sent) into the field's value, or raises ConfigError with one line.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from llmclient.errors import ConfigError
from llmclient.server_metrics import metrics_target
from llmclient.telemetry import telemetry_page
from scheduler.errors import ParameterError
from scheduler.spread import Spread

Kind = Literal["int", "float", "str", "flag", "list", "words"]
# the problem with a value, or None: called with the value and the option's name (its flag, for messages)
Check = Callable[[Any, str], str | None]


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    # list: repeatable; words: several after one flag
    kind: Kind
    # as Locust's parser holds it (text, for an option whose field is parsed)
    default: Any
    help: str
    # default: LOCUST_ + DEST in capitals
    env: str = ""
    check: Check | None = None
    choices: tuple[str, ...] | None = None
    # kept out of the web UI's form, and marked secret
    secret: bool = False
    # shown in the web UI's form
    web_form: bool = True
    # other spellings of a value, taken as the value they name
    aliases: Mapping[str, str] | None = None
    # the field's typed value from the option's non-empty text (raises ParameterError or ValueError)
    parse: Callable[[Any], Any] | None = None
    # the typed value of an empty text (``parse`` takes only non-empty text)
    empty: Any = None
    # the typed value as the run's config file writes it (the text it came from)
    show: Callable[[Any], Any] | None = None
    # the field's name in its section (set by ``options_of``)
    dest: str = ""

    @property
    def env_var(self) -> str:
        return self.env or "LOCUST_" + self.dest.upper()

    @property
    def flag(self) -> str:
        """Every flag, as a type error names the option."""
        return "/".join(self.flags)

    @property
    def name(self) -> str:
        """The option as a message names it: its first long flag (with the short one before it)."""
        return f"{self.flags[0]}/{self.flags[1]}" if not self.flags[0].startswith("--") else self.flags[0]

    def shown(self, value: Any) -> Any:
        """The field's value as the run's config file writes it."""
        if self.show is not None and value is not None:
            return self.show(value)
        return list(value) if isinstance(value, tuple) else value


def option(kind: Kind, flags: tuple[str, ...], default: Any, help: str, **kw: Any) -> Any:
    """A section's field that is an option; its default is ``default`` typed (parsed, for a parsed one)."""
    spec = Option(flags, kind, default, help, **kw)
    typed = default if spec.parse is None else spec.parse(default) if default else spec.empty
    if type(typed).__hash__ is None:
        return field(default_factory=lambda: typed, metadata={"option": spec})
    return field(default=typed, metadata={"option": spec})


def spread_option(flags: tuple[str, ...], default: str, help: str, parse: Callable[[str], Spread]) -> Any:
    """An option whose value is a ``Spread`` (scheduler/spread.py): S, exp:MEAN or uniform:LO,HI."""
    return option("str", flags, default, help, parse=parse, check=parsed_by(parse), show=str)


def options_of(section: type) -> tuple[Option, ...]:
    """The options of a section class, in its fields' order."""
    return tuple(replace(f.metadata["option"], dest=f.name) for f in fields(section) if "option" in f.metadata)


def _shown(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def at_least(low: float) -> Check:
    word = "at least 1" if low == 1 else ("0 or more" if low == 0 else f"at least {low:g}")
    return lambda v, name: None if v is None or v >= low else f"{name} must be {word}, got {_shown(v)}"


def positive(noun: str = "") -> Check:
    what = f"a positive number of {noun}" if noun else "positive"
    return lambda v, name: None if v is None or v > 0 else f"{name} must be {what}, got {_shown(v)}"


def between_0_and_1() -> Check:
    return lambda v, name: None if v is None or 0 <= v <= 1 else f"{name} must be between 0 and 1, got {_shown(v)}"


def existing_file() -> Check:
    return lambda v, name: None if not v or os.path.isfile(v) else f"{name} {v}: no such file"


def parsed_by(parse: Callable[[Any], object]) -> Check:
    """The parser's one-line error, for a non-empty value (a ParameterError names the option)."""

    def check(value: Any, name: str) -> str | None:
        try:
            parse(value) if value else None
        except ParameterError as exc:
            return exc.named(lambda _parameter: name)
        except ValueError as exc:
            return str(exc)
        return None

    return check


def metrics_urls(urls: tuple[str, ...], name: str) -> str | None:
    for url in urls or ():
        try:
            metrics_target(url)
        except ValueError as exc:
            return f"{name}: {exc}"
    return None


def telemetry_urls(urls: tuple[str, ...], name: str) -> str | None:
    for url in urls or ():
        try:
            telemetry_page(url)
        except ValueError as exc:
            return f"{name} {exc}"
    return None


def _int_arg(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _float_arg(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


ARG_TYPES: dict[str, Callable[[str], Any]] = {"int": _int_arg, "float": _float_arg}


def typed_value(opt: Option, value: Any, flag_of: Callable[[str], str]) -> Any:
    """One option's value, typed and checked, from what Locust parsed or the web UI's form sent
    (``flag_of``: another option's name by its dest, for a parser's message that names it)."""
    value = _text_value(opt, value)
    if opt.choices and value not in opt.choices:
        raise ConfigError(f"{opt.flag} must be one of {', '.join(opt.choices)}, got {value!r}")
    problem = opt.check(value, opt.name) if opt.check is not None else None
    if problem:
        raise ConfigError(problem)
    if opt.parse is None:
        return value
    if not value:
        return opt.empty
    try:
        return opt.parse(value)
    except ParameterError as exc:
        raise ConfigError(exc.named(lambda p: opt.name if p == opt.dest else flag_of(p))) from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _text_value(opt: Option, value: Any) -> Any:
    """The value of the kind the option declares: its default when unset, words and lists as tuples."""
    # unset, or an empty web UI field
    if value is None or (value == "" and opt.kind != "str"):
        value = opt.default
    # the web UI's form sends true/false
    elif isinstance(value, str) and opt.kind == "flag":
        value = value.strip().lower() in ("true", "1", "on", "yes")
    # the web UI's form sends text
    elif isinstance(value, str) and opt.kind in ARG_TYPES:
        try:
            value = ARG_TYPES[opt.kind](value.strip())
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"{opt.flag}: {exc}") from None
    if opt.kind == "flag":
        value = bool(value)
    if opt.aliases and isinstance(value, str):
        value = opt.aliases.get(value, value)
    # several after one flag, or one string (space-separated) from the environment
    if opt.kind == "words":
        words: list[Any] = value.split() if isinstance(value, str) else list(value)
        value = tuple(str(w) for w in words)
    # repeated, comma-separated, or one string from an environment variable
    if opt.kind == "list":
        items: list[object] = [value] if isinstance(value, str) else list(value)
        value = tuple(part.strip() for item in items for part in str(item).split(",") if part.strip())
    return value
