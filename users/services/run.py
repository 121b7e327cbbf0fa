"""One Locust process's run: the few objects its users and listeners share.

Built by its role (``runtime/roles.py``), its parts given to their constructors, and kept on the
environment as its one handle (``runtime/handle.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from users.observe.live_stats import LiveStats
from users.observe.request_log import RequestLog
from users.services.recorder import Fire, Recorder
from users.services.sessions import SessionRunner
from users.settings.context import RunContext
from users.settings.settings import Settings
from users.supply.primer import ServerPrimer
from users.supply.prompt_service import PromptService


class LLMRun:
    def __init__(
        self,
        settings: Settings,
        request_log: RequestLog,
        fire: Fire,
        on_fatal: Callable[[str], None],
        csv_prefix: str | None = None,
        stream_id: str = "0",
        extra_columns: Callable[[], dict[str, float | None]] | None = None,
    ) -> None:
        """``on_fatal``: how the run ends when it cannot go on (said once); ``extra_columns``: the client's
        own figures beside each scrape of the server's."""
        self.context = RunContext(settings, stream_id)
        self.prompts = PromptService(self.context, on_fatal)
        self.recorder = Recorder(self.context, fire, on_fatal)
        self.request_log = request_log
        self.primer = ServerPrimer(self.context, self.prompts, csv_prefix, extra_columns)
        self.live = LiveStats()
        self.sessions = SessionRunner(self.context, self.prompts)
        self._users = itertools.count()

    def new_user(self) -> int:
        """A user of this process is made: its index (0, 1, …, in the order made)."""
        return next(self._users)
