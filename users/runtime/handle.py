"""The run's one handle on Locust's environment: ``environment.llm_run``.

``register`` (roles.py) keeps the run it built there; users and the shape find it with ``get_run``.
Nothing else of the suite is set on the environment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from locust.env import Environment

    from users.services.run import LLMRun

RUN_ATTRIBUTE = "llm_run"


def keep_run(environment: Environment, run: LLMRun) -> None:
    setattr(environment, RUN_ATTRIBUTE, run)


def get_run(environment: Environment) -> LLMRun:
    """The run ``register`` built for this process (raises when the suite was not installed)."""
    run: LLMRun | None = getattr(environment, RUN_ATTRIBUTE, None)
    if run is None:
        raise RuntimeError("the suite's run is not set up: a locustfile imports users.api (which installs it)")
    return run
