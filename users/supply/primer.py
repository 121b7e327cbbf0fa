"""Server state around the run: the cache reset and warm-up before it, ``/metrics`` scraped during it.

Touched by one process only: the local one, or the master.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import gevent
from gevent.pool import Pool

from llmclient.control import profiler, reset_prefix_cache, warm_up
from llmclient.errors import ConfigError
from llmclient.server_metrics import ReplicaMetrics
from llmclient.telemetry import GpuTelemetry
from users.settings.context import RunContext
from users.settings.hosts import split_hosts
from users.supply.prompt_service import PromptService

logger = logging.getLogger(__name__)
# GPU exporters refresh about once a second (DCGM's default collect interval)
TELEMETRY_INTERVAL_S = 1.0


class ServerPrimer:
    def __init__(
        self,
        context: RunContext,
        prompts: PromptService,
        csv_prefix: str | None,
        extra_columns: Callable[[], dict[str, float | None]] | None = None,
    ) -> None:
        self.context = context
        self.prompts = prompts
        self.csv_prefix = csv_prefix
        self.metrics: ReplicaMetrics | None = None
        # a sweep's prefix-cache handling: reset or warm-up
        self.level_cache = ""
        # the client's own figures, beside each scrape's
        self.extra_columns = extra_columns
        self._loop: gevent.Greenlet[[], None] | None = None
        self._stage_loop: gevent.Greenlet[[float], None] | None = None
        # --telemetry-url: the GPU exporters
        self.telemetry: GpuTelemetry | None = None
        # --profile: the hosts whose profiler runs now
        self.profiling: list[str] = []
        self._telemetry_loop: gevent.Greenlet[[float], None] | None = None

    def prime(self, host: str) -> None:
        """Reset and warm the prefix cache as asked, then start scraping /metrics."""
        context = self.context
        s = context.settings
        # looked up once here too: the live figures are labelled with it
        context.model(host)
        if s.server.reset_prefix_cache:
            self._reset_all(host)
        if s.prompts.warmup:
            self._warm_up(host, s.prompts.warmup)
        if s.server.metrics_interval > 0:
            urls = list(s.server.metrics_url) or split_hosts(host)
            self.metrics = ReplicaMetrics(urls, context.auth, self.csv_prefix, self.extra_columns, context.tls)
            self.metrics.scrape()
            self._loop = gevent.spawn(self._scrape_every, s.server.metrics_interval)
            if s.mode.stages:
                self._stage_loop = gevent.spawn(self._scrape_at_stage_ends, time.time())
        # the measured part begins: after the reset and warm-up
        if s.measurement.profile and s.measurement.profile_level is None:
            self.start_profile(host)
        if s.energy.telemetry_url:
            path = f"{self.csv_prefix}_gpu_telemetry.csv" if self.csv_prefix else None
            self.telemetry = GpuTelemetry(list(s.energy.telemetry_url), path, context.tls)
            self.telemetry.scrape()
            self._telemetry_loop = gevent.spawn(self._telemetry_every, TELEMETRY_INTERVAL_S)

    def start_profile(self, host: str) -> None:
        """--profile: every host's profiler on (a host that refuses is said in one line; the run goes on)."""
        for one in split_hosts(host):
            try:
                profiler(self.context.target(one), self.context.auth, "start")
                self.profiling.append(one)
                logger.info("profiling %s", one)
            except ConfigError as exc:
                logger.error("--profile: %s", exc)

    def stop_profile(self) -> None:
        """The profilers this run started, off (each writes its trace where the server was told)."""
        while self.profiling:
            one = self.profiling.pop()
            try:
                profiler(self.context.target(one), self.context.auth, "stop")
                logger.info("profile of %s stopped: its trace is where the server's --profiler-config says", one)
            except ConfigError as exc:
                logger.error("%s", exc)

    def _telemetry_every(self, interval: float) -> None:
        while self.telemetry is not None:
            gevent.sleep(interval)
            self.telemetry.scrape()

    def _scrape_at_stage_ends(self, started: float) -> None:
        """``--stages``: a scrape as each stage ends, so each stage's server figures are its own."""
        end = started
        for stage in self.context.settings.mode.stages:
            end += stage.duration_s
            gevent.sleep(max(0.0, end - time.time()))
            self.scrape_now()

    def _reset_all(self, host: str) -> bool:
        """Reset every host's prefix cache; True when all allowed it."""
        return all([reset_prefix_cache(self.context.target(h), self.context.auth) for h in split_hosts(host)])

    def _warm_up(self, host: str, per_group: int) -> None:
        """The same unmeasured requests to every host (each replica has a cache of its own)."""
        context = self.context
        contents = self.prompts.warmup_prompts(host, per_group)
        pool = Pool(16)
        for one in split_hosts(host):
            ok = warm_up(
                self.context.target(one),
                context.endpoint,
                context.model(host),
                context.headers,
                contents,
                run_all=lambda jobs: gevent.joinall([pool.spawn(job) for job in jobs]),
            )
            logger.info("warm-up of %s: %d of %d unmeasured requests succeeded", one, ok, len(contents))

    def prepare_level(self, host: str) -> str:
        """Before each level of a sweep, the same prefix-cache state: a reset where the server allows
        it (decided at the first level), else an equal warm-up. Says which: ``reset`` or ``warm-up``.

        ``/metrics`` is scraped at the boundary (and again after a warm-up), so the server's figures of
        each level are the difference of two scrapes with only that level's requests between them."""
        self.scrape_now()
        if self.level_cache != "warm-up" and self._reset_all(host):
            self.level_cache = "reset"
        else:
            self.level_cache = "warm-up"
            self._warm_up(host, max(self.context.settings.prompts.warmup, 1))
            self.scrape_now()
        return self.level_cache

    def scrape_now(self) -> None:
        if self.metrics is not None:
            self.metrics.scrape()

    def _scrape_every(self, interval: float) -> None:
        while self.metrics is not None and self.metrics.available:
            gevent.sleep(interval)
            if self.metrics is not None:
                self.metrics.scrape()

    def latest(self) -> dict[str, float | None]:
        """The newest scrape and the hit rate so far, for the live figures ({} before any)."""
        if self.metrics is None or not self.metrics.latest:
            return {}
        figures = self.metrics.figures()
        means = {k: v for k, v in figures.items() if k.startswith("server_mean_") and not math.isnan(v)}
        return {**self.metrics.latest, "prefix_cache_hit_rate": self.metrics.hit_rate(), **means}

    def stop(self) -> None:
        self.stop_profile()
        if self._stage_loop is not None:
            self._stage_loop.kill(block=True)
            self._stage_loop = None
        if self._loop is not None:
            self._loop.kill(block=True)
            self._loop = None
        if self.metrics is not None:
            # the end of the run
            self.metrics.scrape()
            self.metrics.close()
        if self._telemetry_loop is not None:
            self._telemetry_loop.kill(block=True)
            self._telemetry_loop = None
        if self.telemetry is not None:
            # the end of the run
            self.telemetry.scrape()
            self.telemetry.close()
            self.telemetry = None
