"""One Locust process's run: the few objects its users and listeners share.

Built by ``roles.register(environment)`` and kept on the environment; ``get_run``
finds it (and builds a bare one for an Environment made by hand, as tests do).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from users.context import RunContext
from users.live_stats import LiveStats
from users.options import Settings
from users.primer import ServerPrimer
from users.prompt_service import PromptService
from users.recorder import Recorder
from users.request_log import RequestLog

if TYPE_CHECKING:
    from locust.env import Environment

RUN_ATTRIBUTE = "llm_run"


class LLMRun:
    def __init__(
        self, environment: Environment, settings: Settings, request_log: RequestLog, stream_id: str = "0"
    ) -> None:
        self.environment = environment
        self.context = RunContext(settings, stream_id)
        self.prompts = PromptService(self.context)
        self.recorder = Recorder(self.context, environment.events)
        self.request_log = request_log
        csv_prefix = getattr(environment.parsed_options, "csv_prefix", None)
        self.primer = ServerPrimer(self.context, self.prompts, csv_prefix)
        self.live = LiveStats()


def get_run(environment: Environment) -> LLMRun:
    run: LLMRun | None = getattr(environment, RUN_ATTRIBUTE, None)
    if run is None:  # an Environment built by hand, without register()
        run = LLMRun(environment, Settings.from_options(environment.parsed_options), RequestLog(None))
        setattr(environment, RUN_ATTRIBUTE, run)
    return run
