"""``--stages 30s:8u,60s:32u``: a closed loop in steps, on Locust's own ``LoadTestShape``.

Locust uses a shape class found in the locustfile, and the web UI then shows the shape's progress
instead of the user-count fields. The suite's run keeps ``StagesShape`` only when ``--stages`` names
user counts (``users/plugin.py``). Each row's ``stage`` is the number of the stage its request was
sent in.
"""

from __future__ import annotations

from locust import LoadTestShape

from scheduler.arrivals import stage_at
from users.runtime.handle import get_run


class StagesShape(LoadTestShape):
    """Each stage's user count for its duration, then the end of the test."""

    # -u and -r name the run's users elsewhere: no warning that the shape ignores them
    use_common_options = True
    # the run drops it unless --stages names user counts (runtime/roles.choose_classes)
    runs_user_stages = True

    def tick(self) -> tuple[int, float] | None:
        if self.runner is None:
            return None
        stages = get_run(self.runner.environment).context.settings.mode.user_stages
        current = stage_at(stages, self.get_run_time()) if stages else None
        if current is None or current[1].users is None:
            return None
        users = current[1].users
        # each step's users start within a second
        return users, float(users)
