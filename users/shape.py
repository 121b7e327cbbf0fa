"""``--stages 30s:8u,60s:32u``: a closed loop in steps, on Locust's own ``LoadTestShape``.

Locust uses a shape class found in the locustfile, and the web UI then shows the shape's
progress instead of the user-count fields. The locustfile makes ``StagesShape`` concrete
only when ``--stages`` (or ``LOCUST_STAGES``) names user counts, as it does with the SDK user.
Each row's ``stage`` is the number of the stage its request was sent in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from locust import LoadTestShape

from scheduler.arrivals import parse_stages, stage_at
from users.runtime.roles import get_run
from users.settings.options import before_parsing


def wants_user_stages(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """``--stages`` names user counts (read at import time, before Locust parses the options)."""
    try:
        stages = parse_stages(before_parsing("stages", argv, environ))
    except ValueError:
        # the options' check says what is wrong, in one line
        return False
    return bool(stages) and stages[0].users is not None


class StagesShape(LoadTestShape):
    """Each stage's user count for its duration, then the end of the test."""

    abstract = True

    def tick(self) -> tuple[int, float] | None:
        if self.runner is None:
            return None
        stages = get_run(self.runner.environment).context.settings.user_stages
        current = stage_at(stages, self.get_run_time()) if stages else None
        if current is None or current[1].users is None:
            return None
        users = current[1].users
        # each step's users start within a second
        return users, float(users)
