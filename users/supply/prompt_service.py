"""The run's prompts: a source chosen from the settings, built ahead in a pool before users start."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from locust.exception import StopUser

from llmclient.control import ServerTokenizer
from llmclient.errors import ConfigError
from prompts.dataset import DatasetPrompts, load_dataset
from prompts.source import Prompt, PromptError, PromptSource
from prompts.synthetic import SharedPrefixPrompts
from prompts.tokenizer import LocalTokenizer, TokenCounter
from prompts.trace_prompts import TracePrompts
from scheduler.levels import PromptLevel
from users.settings.context import RunContext
from users.settings.hosts import primary
from users.settings.mode import Levels
from users.supply.prompt_pool import PromptPool

logger = logging.getLogger(__name__)

# prompts built before the run at most; more are built in the background
PREBUILD_MAX = 4096


class PromptService:
    def __init__(self, context: RunContext, on_fatal: Callable[[str], None]) -> None:
        self.context = context
        # a prompt that cannot be built, counted or sent mid-run ends the run: the role says how (once)
        self.on_fatal = on_fatal
        self._fatal = ""
        self.source: PromptSource | None = None
        # a sweep's prompt levels: each one's prompts, by name
        self.level_pools: dict[str, PromptPool] = {}
        self._prepared_for: tuple[object, ...] | None = None

    def token_counter(self, host: str) -> TokenCounter:
        s = self.context.settings
        if s.prompts.tokenizer:
            return LocalTokenizer(s.prompts.tokenizer)
        return ServerTokenizer(
            self.context.target(primary(host)),
            self.context.model(host),
            self.context.auth,
            without_route="pass --tokenizer NAME_OR_PATH (the served model's tokenizer) so prompts can be sized",
        )

    def build_source(self, host: str, stream: str, level: PromptLevel | None = None) -> PromptSource:
        """The run's prompts; ``level``: a prompt level's, with shared prefixes of its own."""
        s = self.context.settings
        trace = self.context.trace()
        if trace is not None:
            return TracePrompts(self.token_counter(host), self.context.endpoint.messages, trace, s.load.seed)
        if s.prompts.dataset:
            return DatasetPrompts(load_dataset(s.prompts.dataset), s.load.seed, stream)
        return SharedPrefixPrompts(
            self.token_counter(host),
            chat=self.context.endpoint.messages,
            input_tokens=s.prompts.input_tokens,
            prefix_tokens=s.prompts.prefix_tokens if level is None else level.prefix_tokens,
            prefix_groups=s.prompts.prefix_groups if level is None else level.groups,
            input_tokens_stddev=s.prompts.input_tokens_stddev,
            seed=s.load.seed,
            stream=stream,
            prefix_salt=f"-{level.name}" if level is not None else "",
        )

    def prepare(self, host: str) -> None:
        """Build the source and fill its pool before users start (raises PromptError/ConfigError). A new
        test starts with prompts that may be built again (a web UI run can follow one that failed)."""
        self._fatal = ""
        key = self.prepared_key(host)
        self.context.prepare_images()
        if self._prepared_for == key and self.source is not None:
            return
        if self.context.settings.prompt_levels:
            self._prepare_levels(host)
            self._prepared_for = key
            return
        source = self.build_source(host, self.context.stream_id)
        # nothing to build ahead
        if isinstance(source, DatasetPrompts | TracePrompts):
            self.source = source
        else:
            s = self.context.settings
            n = s.total_requests * s.prompts.embed_batch if s.total_requests else None
            # no process issues more than -n requests (a worker's share is at most the global total)
            pool = PromptPool(source, min(n, PREBUILD_MAX) if n else 256, total=n)
            started = time.perf_counter()
            pool.fill()
            logger.info("built %d prompts in %.1f s", pool.built, time.perf_counter() - started)
            self.source = pool
        self._prepared_for = key

    def prepared_key(self, host: str) -> tuple[object, ...]:
        """What this test's prompts depend on: the host and the suite's options (not Locust's own)."""
        s = self.context.settings
        return (host, s.load, s.prompts, s.server, s.mode)

    def _prepare_levels(self, host: str) -> None:
        """Each prompt level's prompts, built before the run: a level starts on time."""
        s = self.context.settings
        # prompt levels are a sweep's
        levels = s.mode
        assert isinstance(levels, Levels)
        per_level = levels.requests or int((s.load.request_rate or 1.0) * (levels.duration or 60.0) * 1.2) + 16
        started = time.perf_counter()
        self.level_pools = {}
        for level in s.prompt_levels:
            pool = PromptPool(self.build_source(host, self.context.stream_id, level), min(per_level, PREBUILD_MAX))
            pool.fill()
            self.level_pools[level.name] = pool
        built = sum(pool.built for pool in self.level_pools.values())
        logger.info(
            "built %d prompts for %d levels in %.1f s", built, len(self.level_pools), time.perf_counter() - started
        )
        self.source = self.level_pools[s.prompt_levels[0].name]

    def use_prompt_set(self, name: str) -> None:
        """A prompt level begins: its own prompts from now on."""
        pool = self.level_pools.get(name)
        if pool is not None:
            self.source = pool

    def check(self, host: str) -> None:
        """That prompts can be made here (the master builds none, but says so before the run)."""
        self.build_source(host, "check").next_prompt()

    @property
    def ready(self) -> bool:
        """Prepared for this test (not when the test could not start)."""
        return self.source is not None

    def next_prompt(self) -> Prompt:
        """The run's next prompt. When it cannot be built (its tokens cannot be counted, say), the run ends:
        said once through ``on_fatal``, and the asking user or request stops (StopUser)."""
        assert self.source is not None, "prompts are prepared at test start"
        return self._or_stop(self.source.next_prompt)

    def prompt_for(self, row: int) -> Prompt:
        """A replayed trace's prompt for its request ``row`` (failing as ``next_prompt``)."""
        source = self.source
        assert isinstance(source, TracePrompts), "prompt_for is a trace's"
        return self._or_stop(lambda: source.prompt_for(row))

    def _or_stop(self, build: Callable[[], Prompt]) -> Prompt:
        if self._fatal:
            raise StopUser()
        try:
            return build()
        except (ConfigError, PromptError) as exc:
            if not self._fatal:
                self._fatal = f"prompts cannot be built: {exc}"
                self.on_fatal(self._fatal)
            raise StopUser() from None

    def warmup_prompts(self, host: str, per_group: int) -> list[str]:
        """Unmeasured prompts that prime the prefix cache: ``per_group`` for each shared prefix."""
        source = self.build_source(host, "warmup")
        if isinstance(source, SharedPrefixPrompts):
            return [f"{prefix}Warm-up {g}-{k}." for g, prefix in enumerate(source.prefixes) for k in range(per_group)]
        return [source.next_prompt().content for _ in range(per_group)]

    def stop(self) -> None:
        for pool in {id(p): p for p in (self.source, *self.level_pools.values())}.values():
            if isinstance(pool, PromptPool):
                pool.stop()
