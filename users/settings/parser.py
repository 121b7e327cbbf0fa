"""The suite's options on Locust's parser: one argument per option, in a titled group per section.

``add_options`` is the ``init_command_line_parser`` listener (users/plugin.py). Each option gets its
``LOCUST_*`` environment variable and a locust.conf key (its long name); every argparse error, Locust's
own included, becomes one line.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import TYPE_CHECKING, Any

from llmclient.errors import one_line_errors
from users.settings.option import ARG_TYPES, Option, options_of
from users.settings.sections import SECTIONS, TAKEN_FROM_LOCUST

if TYPE_CHECKING:
    from locust.argument_parser import LocustArgumentParser


def help_text(opt: Option) -> str:
    """An option's help as --help shows it: with its default and its environment variable."""
    # a flag's False is no default worth saying; a 0 is (0 == False, so compare by identity)
    unsaid = opt.secret or opt.default is None or opt.default is False or opt.default in ("", ())
    default = "" if unsaid else f"default {opt.default}; "
    return f"{opt.help} [{default}env {opt.env_var}]"


def add_options(parser: LocustArgumentParser, **_kw: object) -> None:
    """Register the suite's options on Locust's parser (configargparse)."""
    one_line_errors(parser)
    # validate Locust's --csv before Locust creates the folder
    for action in parser._actions:
        if "--csv" in action.option_strings:
            action.type = _check_csv_prefix
    for section in SECTIONS:
        group = parser.add_argument_group(section.__doc__)
        for opt in options_of(section):
            # the suite's meaning replaces Locust's option of that name
            if opt.dest in TAKEN_FROM_LOCUST:
                _remove_option(parser, opt.flag)
            action = group.add_argument(*opt.flags, dest=opt.dest, **_arguments(opt))
            # what Locust's own add_argument keeps on an action, for its web UI's form (a group's takes no
            # such keywords)
            action.include_in_web_ui = opt.web_form and not opt.secret
            action.is_secret = opt.secret
            action.is_required = action.is_multiple = False


def _arguments(opt: Option) -> dict[str, Any]:
    """``add_argument``'s keywords for an option."""
    kwargs: dict[str, Any] = {"default": opt.default, "env_var": opt.env_var, "help": help_text(opt)}
    if opt.kind == "flag":
        kwargs["action"] = "store_true"
    elif opt.kind == "list":
        # argparse appends to a fresh list
        kwargs.update(action="append", default=None)
    elif opt.kind == "words":
        kwargs.update(action="extend", nargs="+", default=None)
    elif opt.kind in ARG_TYPES:
        kwargs.update(type=ARG_TYPES[opt.kind], metavar="N" if opt.kind == "int" else "X")
    if opt.choices:
        kwargs.update(choices=opt.choices, metavar="|".join(c for c in opt.choices if c))
    if opt.aliases:
        # before the choices' check
        kwargs["type"] = lambda text, aliases=opt.aliases: aliases.get(text, text)
    return kwargs


def _check_csv_prefix(text: str) -> str:
    """--csv must name a folder we can create and write in, before Locust opens its files."""
    folder = os.path.dirname(text) or "."
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise argparse.ArgumentTypeError(f"cannot write CSV files to {text!r}: {reason}") from None
    return text


def _remove_option(parser: LocustArgumentParser, flag: str) -> None:
    """Take an option of Locust's out of its parser (and its --help), so the suite's can have its name."""
    action = parser._option_string_actions.get(flag)
    if action is not None:
        for option_string in action.option_strings:
            parser._option_string_actions.pop(option_string, None)
        action.container._remove_action(action)
