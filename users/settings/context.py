"""What every user of one Locust process shares: settings, the endpoint, headers, the model, the budget."""

from __future__ import annotations

import time
from dataclasses import replace

import gevent
from gevent.event import AsyncResult
from gevent.lock import Semaphore

from llmclient.control import auth_headers, resolve_model
from llmclient.errors import ConfigError
from llmclient.http import Target, grow_descriptor_table, tls_context
from llmclient.pacer import Pacer
from llmclient.reactor import StreamReactor
from llmclient.stamps import keep_kernel_stamping_on
from llmclient.stream import ENDPOINTS, Endpoint
from prompts.images import ImageSet, parse_size
from prompts.source import PromptError
from scheduler.arrivals import stage_at
from scheduler.trace import Trace, TraceError, load_trace
from users.settings.budget import Budget, RequestBudget, Units
from users.settings.hosts import HostChooser, primary, split_hosts
from users.settings.model_mix import ModelPicker
from users.settings.settings import Settings

# distinct images (--images without --image-share): requests' images made ahead
IMAGES_AHEAD = 64


class RunContext:
    settings: Settings

    def __init__(self, settings: Settings, stream_id: str = "0") -> None:
        # distinguishes the prompt suffixes of different worker processes
        self.stream_id = stream_id
        self.budget: Budget = RequestBudget(settings.total_requests)
        # what each request spends of it
        self.units = Units(self.budget, settings.counts_sessions)
        # so that opening connections never waits for the kernel (see there)
        grow_descriptor_table()
        # the open loop's sends, fired when due (llmclient/pacer.py)
        self.pacer = Pacer()
        self.reactor = StreamReactor(self.pacer)
        # requests this process has sent and not finished
        self.in_flight = 0
        # unix time the test started (numbers the requests of --stages in user counts)
        self.started = 0.0
        self._model_lock = Semaphore()
        self._trace: tuple[tuple[str, str, int], Trace] | None = None
        # by -H: the hosts a request may go to
        self._choosers: dict[str, HostChooser] = {}
        # a thread of gevent's pool making images ahead
        self._image_fill: AsyncResult | None = None
        self.apply(settings)

    def begin_test(self, budget: Budget) -> None:
        """A test starts now, with this budget of requests."""
        self.budget = budget
        self.units = Units(budget, self.settings.counts_sessions)
        self.started = time.time()

    def retake(self, settings: Settings) -> None:
        """The options again at a test's start (the web UI's form, a worker's spawn message): what depends
        on the suite's options is rebuilt when they changed (the model looked up stays); Locust's own are
        taken as they are."""
        current = self.settings
        if replace(settings, locust=current.locust) == current.with_model(settings.server.model):
            self.settings = replace(current, locust=settings.locust)
        else:
            self.apply(settings)

    def apply(self, settings: Settings) -> None:
        """Take (new) settings: a worker gets the master's with each test start."""
        self.settings = settings
        server = settings.server
        try:
            # how https connections verify the server: carried by every target (``target``)
            self.tls = tls_context(server.ca_bundle, server.insecure) if server.ca_bundle or server.insecure else None
        except ValueError as exc:
            raise ConfigError(f"--ca-bundle {exc}") from None
        if settings.measurement.kernel_timestamps:
            keep_kernel_stamping_on()
        self.endpoint: Endpoint = ENDPOINTS[settings.server.endpoint]
        self.auth = auth_headers(settings.server.api_key)
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream", **self.auth}
        mix = settings.server.model_mix
        # the first: prompts are sized with its tokenizer
        self._model: str | None = mix.names[0] if mix else None
        self._picker = ModelPicker(mix) if mix and len(mix.names) > 1 else None
        self.images = (
            ImageSet(
                settings.prompts.images,
                parse_size(settings.prompts.image_size),
                settings.prompts.image_format,
                settings.prompts.image_share,
                settings.load.seed,
            )
            if settings.prompts.images
            else None
        )

    def target(self, url: str) -> Target:
        """A host of the run (a URL), its https verified as the options say (raises ValueError)."""
        return Target.parse(url, self.tls)

    def stage_label(self, sent: float) -> str:
        """The --stages (user counts) number of a request sent at unix time ``sent``, else ""."""
        stages = self.settings.mode.user_stages
        current = stage_at(stages, sent - self.started) if stages and self.started else None
        return str(current[0]) if current is not None else ""

    def current_stage(self, now: float) -> int:
        """The --stages number running at unix time ``now`` (0 outside a staged run or after it)."""
        steps = self.settings.mode.stages
        current = stage_at(steps, now - self.started) if steps and self.started else None
        return current[0] if current is not None else 0

    def trace(self) -> Trace | None:
        """The replayed trace (--trace), read and checked once per process (raises PromptError)."""
        s = self.settings
        if not s.load.trace:
            return None
        key = (s.load.trace, s.load.trace_format, s.load.trace_block_tokens)
        if self._trace is None or self._trace[0] != key:
            try:
                trace = load_trace(*key)
            except TraceError as exc:
                raise PromptError(str(exc)) from None
            self._trace = (key, trace)
        return self._trace[1]

    def chooser(self, host: str) -> HostChooser:
        """Which of ``-H``'s hosts the next request goes to (``--host-strategy``), one per process and -H."""
        key = f"{self.settings.server.host_strategy} {host}"
        if key not in self._choosers:
            self._choosers[key] = HostChooser(split_hosts(host) or [host], self.settings.server.host_strategy)
        return self._choosers[key]

    def known_model(self) -> str:
        """The model name if given or looked up already, else "" (never a request)."""
        return self._model or ""

    def prepare_images(self) -> None:
        """Make distinct images ahead, before users start (the first requests' too)."""
        n = self.settings.total_requests
        if self.images is not None:
            self.images.fill(min(n, IMAGES_AHEAD) if n else IMAGES_AHEAD)

    def next_images(self) -> list[str]:
        """The next request's images; below half the images made ahead, a thread makes more (encoding
        releases the GIL, so the event loop, and with it the open loop's schedule, keeps running)."""
        images = self.images
        assert images is not None
        urls = images.next()
        if not images.share and images.ready < IMAGES_AHEAD // 2:
            if self._image_fill is None or self._image_fill.ready():
                self._image_fill = gevent.get_hub().threadpool.spawn(images.fill, IMAGES_AHEAD)
        return urls

    def next_model(self, host: str) -> str:
        """The next request's model: by ``--model``'s weights when it names several, else ``model``."""
        return self._picker.pick() if self._picker is not None else self.model(host)

    def model(self, host: str) -> str:
        """The served model (the first of ``--model``'s), looked up once per process (raises ConfigError)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    self._model = resolve_model(
                        self.target(primary(host)), self.settings.server.api_key, self.settings.server.model
                    )
        return self._model
