"""Errors that name a parameter: the scheduler speaks of parameters, a command line of its flags.

``str(error)`` names the parameters as the scheduler's callers pass them (``sweep takes …``); the Locust
layer says the same with its flags (``error.named(flag_of)``: ``--sweep takes …``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

# another parameter named in a message: {name}
_MENTION = re.compile(r"\{([a-z_]+)\}")


class ParameterError(ValueError):
    """A bad value of ``parameter``. ``rest`` follows its name (it starts with a space or a colon) and may name
    other parameters as ``{name}``."""

    def __init__(self, parameter: str, rest: str) -> None:
        self.parameter = parameter
        self.rest = rest
        super().__init__(self.named(lambda name: name))

    def named(self, flag_of: Callable[[str], str]) -> str:
        """The message with each parameter called by ``flag_of(parameter)``."""
        return flag_of(self.parameter) + _MENTION.sub(lambda m: flag_of(m.group(1)), self.rest)
