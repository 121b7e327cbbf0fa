"""``--stages 30s:8u,60s:32u``: a closed loop in steps, on Locust's own ``LoadTestShape``.

Locust uses a shape class found in the locustfile, and the web UI then shows the shape's
progress instead of the user-count fields. The locustfile makes ``StagesShape`` concrete
only when ``--stages`` (or ``LOCUST_STAGES``) names user counts, as it does with the SDK user.
Each row's ``stage`` is the number of the stage its request was sent in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from locust import LoadTestShape

from scheduler.arrivals import parse_stages, stage_at


def stages_option(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """The ``--stages`` value of the command line (or the environment), or ""."""
    for i, arg in enumerate(argv):
        if arg == "--stages" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--stages="):
            return arg.split("=", 1)[1]
    return environ.get("LOCUST_STAGES", "")


def wants_user_stages(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    try:
        stages = parse_stages(stages_option(argv, environ) or "")
    except ValueError:
        return False  # the options' check says what is wrong, in one line
    return bool(stages) and stages[0].users is not None


class StagesShape(LoadTestShape):
    """Each stage's user count for its duration, then the end of the test."""

    abstract = True

    def tick(self) -> tuple[int, float] | None:
        if self.runner is None:
            return None
        options = self.runner.environment.parsed_options
        text = getattr(options, "stages", "") or os.environ.get("LOCUST_STAGES", "")
        current = stage_at(parse_stages(text), self.get_run_time())
        if current is None or current[1].users is None:
            return None
        users = current[1].users
        return users, float(users)  # each step's users start within a second
