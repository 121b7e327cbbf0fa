"""The suite as a Locust plugin: its options and its run, for any locustfile (``users.api`` installs it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from locust import events

from users.runtime.roles import register
from users.settings.parser import add_options

if TYPE_CHECKING:
    from locust.argument_parser import LocustArgumentParser
    from locust.env import Environment

_installed = False


def _on_parser(parser: LocustArgumentParser, **_kw: object) -> None:
    add_options(parser)


def _on_init(environment: Environment, **_kw: object) -> None:
    # the suite's --profile, not Locust's label (sections.TAKEN_FROM_LOCUST)
    if isinstance(environment.profile, bool):
        environment.profile = None
    register(environment)


def install() -> None:
    """Add the suite's options to Locust's parser and wire each run (once per process)."""
    global _installed
    if not _installed:
        events.init_command_line_parser.add_listener(_on_parser)
        events.init.add_listener(_on_init)
        _installed = True
