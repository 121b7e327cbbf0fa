"""The emulator's scheduler: a waiting queue, a running batch, and decode steps.

Every step emits one token for every running sequence at the same instant,
as vLLM does. Prefill is chunked under a token budget per step and costs time
in proportion to the uncached prompt tokens; a block-hash prefix cache decides
what is cached. The step time grows with the batch, so queueing gives a long
TTFT tail while decode speed stays nearly constant.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from emulator.config import EngineConfig
from emulator.metrics import Metrics
from emulator.prefix_cache import PrefixCache


class Sink(Protocol):
    """Where a sequence's tokens go (sinks.py)."""

    def on_token(self, seq: Sequence, index: int, finish_reason: str) -> None: ...


@dataclass(eq=False)
class Sequence:
    request_id: str
    prompt: list[int]
    max_tokens: int
    ignore_eos: bool
    sink: Sink
    received_mono: float = field(default_factory=time.perf_counter)
    received_wall: float = field(default_factory=time.time)
    hashes: list[int] = field(default_factory=list)
    # the LoRA adapter it asked for ("" the base model): its cache blocks are its own
    adapter: str = ""
    # the trace its traceparent header named (--otlp-traces-endpoint: its span's)
    trace_id: str = ""
    # the session its --session-header named
    session: str = ""
    cached: int = 0
    prefill_left: int = 0
    target_len: int = 0
    generated: int = 0
    # scheduled into the running batch: the end of its queue time
    admitted_mono: float = 0.0
    first_mono: float = 0.0
    first_wall: float = 0.0
    # a reasoning model's first answer token (after --reasoning-tokens of reasoning)
    answer_mono: float = 0.0
    last_mono: float = 0.0
    cancelled: bool = False
    finish_reason: str = ""


class Engine:
    def __init__(self, config: EngineConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.cache = PrefixCache(config.block_size, config.num_blocks)
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self._rng = random.Random(config.seed)
        self._wake = asyncio.Event()
        self.steps = 0

    # -- intake ----------------------------------------------------------------
    def submit(self, seq: Sequence) -> None:
        seq.hashes = self.cache.block_hashes(seq.prompt, seq.adapter)
        if seq.ignore_eos:
            seq.target_len = seq.max_tokens
        else:
            length = 1
            p = self.config.eos_prob
            if p > 0:
                # geometric: each token ends the output with probability p
                u = self._rng.random()
                length = 1 + int(_log1m(u) / _log1m(p)) if p < 1 else 1
            else:
                length = seq.max_tokens
            seq.target_len = max(1, min(seq.max_tokens, length))
        self.waiting.append(seq)
        self._wake.set()

    def reset_prefix_cache(self) -> None:
        self.cache.reset()

    def kv_usage(self) -> float:
        bs = self.config.block_size
        used = sum((len(s.prompt) + s.generated + bs - 1) // bs for s in self.running)
        return min(1.0, used / self.config.num_blocks)

    # -- the step loop -------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        next_t = loop.time()
        while True:
            if not self.running and not self.waiting:
                self._wake.clear()
                await self._wake.wait()
                next_t = loop.time()
            self._admit()
            decoding: list[Sequence] = []
            prefilling: list[Sequence] = []
            for s in self.running:
                (prefilling if s.prefill_left else decoding).append(s)
            if prefilling and not cfg.enable_chunked_prefill:
                # without chunked prefill a step prefills whole prompts, and nothing decodes in it
                decoding = []
            budget = cfg.max_num_batched_tokens - len(decoding)
            prefill_tokens = 0
            first_ready = []
            for s in prefilling:
                if budget <= 0 or (not cfg.enable_chunked_prefill and prefill_tokens and s.prefill_left > budget):
                    break
                take = s.prefill_left if not cfg.enable_chunked_prefill else min(s.prefill_left, budget)
                s.prefill_left -= take
                budget -= take
                prefill_tokens += take
                if not s.prefill_left:
                    first_ready.append(s)
            step_s = (
                cfg.step_ms + cfg.step_ms_per_seq * len(decoding) + cfg.prefill_ms_per_token * prefill_tokens
            ) / 1000.0
            next_t += step_s
            delay = next_t - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -3 * step_s:
                # far behind: start a new schedule rather than catch up with a burst
                next_t = loop.time()
            # else a little late: this process was busy with a burst of requests (the streams of a
            # batch end in the same step, and their next requests come together), which a GPU would
            # not have been. Keep the schedule, so the steps keep their rate on average.

            self.steps += 1
            self._emit(decoding, first_ready, step_s)

    def _admit(self) -> None:
        cfg = self.config
        while self.waiting and len(self.running) < cfg.max_num_seqs:
            s = self.waiting.popleft()
            if s.cancelled:
                continue
            s.admitted_mono = time.perf_counter()
            s.cached = self.cache.lookup(s.hashes, len(s.prompt)) if cfg.enable_prefix_caching else 0
            s.prefill_left = len(s.prompt) - s.cached
            self.metrics.on_admit(len(s.prompt), s.cached)
            self.running.append(s)

    def _emit(self, decoding: list[Sequence], first_ready: list[Sequence], step_s: float) -> None:
        finished = False
        metrics = self.metrics
        if decoding:
            metrics.observe_itl(step_s, len(decoding))
        for s in decoding:
            if s.cancelled:
                finished = True
                continue
            s.generated += 1
            if s.generated >= s.target_len:
                s.finish_reason = "length" if s.generated >= s.max_tokens else "stop"
                finished = True
            s.sink.on_token(s, s.generated - 1, s.finish_reason)
        for s in first_ready:
            if self.config.enable_prefix_caching:
                self.cache.insert(s.hashes)
            if s.cancelled:
                finished = True
                continue
            s.generated = 1
            if s.target_len <= 1:
                s.finish_reason = "length" if s.max_tokens <= 1 else "stop"
                finished = True
            s.sink.on_token(s, 0, s.finish_reason)
        if finished:
            keep = []
            for s in self.running:
                if s.cancelled:
                    metrics.on_abort()
                elif s.finish_reason:
                    metrics.on_finish(s)
                else:
                    keep.append(s)
            self.running = keep
        metrics.generation_tokens += len(decoding) + len(first_ready)


def _log1m(x: float) -> float:
    return math.log1p(-x) if x < 1 else -math.inf
