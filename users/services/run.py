"""One Locust process's run: the few objects its users and listeners share.

Built by ``runtime/roles.register(environment)`` and kept on the environment (``roles.get_run``).
"""

from __future__ import annotations

from users.observe.live_stats import LiveStats
from users.observe.request_log import RequestLog
from users.services.recorder import Fire, Recorder
from users.settings.context import RunContext
from users.settings.options import Settings
from users.supply.primer import ServerPrimer
from users.supply.prompt_service import PromptService


class LLMRun:
    def __init__(
        self,
        settings: Settings,
        request_log: RequestLog,
        fire: Fire,
        csv_prefix: str | None = None,
        stream_id: str = "0",
    ) -> None:
        self.context = RunContext(settings, stream_id)
        self.prompts = PromptService(self.context)
        self.recorder = Recorder(self.context, fire, lambda message: self.prompts.on_fatal(message))
        self.request_log = request_log
        self.primer = ServerPrimer(self.context, self.prompts, csv_prefix)
        self.live = LiveStats()
