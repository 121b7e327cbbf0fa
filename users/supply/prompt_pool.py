"""Prompts built ahead of use, so counting tokens never runs on the timed path.

``fill(n)`` builds n prompts concurrently before the test; afterwards a
background greenlet tops the pool up whenever it runs below half.
"""

from __future__ import annotations

import logging
from collections import deque

import gevent
from gevent.pool import Pool

from llmclient.errors import ConfigError
from prompts.source import Prompt, PromptError, PromptSource

logger = logging.getLogger(__name__)


class PromptPool:
    def __init__(self, source: PromptSource, target_size: int, concurrency: int = 8, total: int | None = None) -> None:
        self.source = source
        self.target_size = max(1, target_size)
        # when the run's size is known, never build more than it needs
        self.total = total
        self.concurrency = concurrency
        self._ready: deque[Prompt] = deque()
        self._refill: gevent.Greenlet | None = None
        self.built = 0

    def _build(self) -> None:
        self._ready.append(self.source.next_prompt())
        self.built += 1

    def fill(self, n: int | None = None) -> None:
        """Build prompts until the pool holds ``n`` (default: its target size); raises PromptError."""
        want = (n or self.target_size) - len(self._ready)
        if self.total is not None:
            want = min(want, self.total - self.built)
        if want <= 0:
            return
        # in call order whatever order the builds finish in: the same seed sends the same prompts in turn
        for made in Pool(self.concurrency).imap(self._make, range(want)):
            if not isinstance(made, Prompt):
                raise made
            self._ready.append(made)
            self.built += 1

    def _make(self, _: int) -> Prompt | ConfigError | PromptError:
        try:
            return self.source.next_prompt()
        # raised by fill, in call order (not by the pool's greenlet)
        except (ConfigError, PromptError) as exc:
            return exc

    def next_prompt(self) -> Prompt:
        if not self._ready:
            # ran dry: build one now (outside any request's timing)
            self._build()
        more_needed = self.total is None or self.built < self.total
        if more_needed and len(self._ready) < self.target_size // 2 and (self._refill is None or self._refill.dead):
            self._refill = gevent.spawn(self._top_up)
        return self._ready.popleft()

    def _top_up(self) -> None:
        try:
            self.fill(self.target_size)
        # tried again, inline, when the pool runs dry
        except (ConfigError, PromptError) as exc:
            logger.warning("topping up prompts failed: %s", exc)

    def stop(self) -> None:
        if self._refill is not None:
            self._refill.kill(block=False)
