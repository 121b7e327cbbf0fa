"""A queue whose SLO capacity is known: the server of issue #36, simulated, for the capacity search's truth.

A server of ``slots`` slots; each request takes ``first_s`` to its first token and ``total_s`` in
all once it holds a slot, served first come first served: an M/D/c queue under Poisson arrivals.
A request's TTFT is its wait for a slot plus ``first_s``. ``true_capacity`` finds, from long runs,
the highest rate at which the share of requests with TTFT within the SLO is the target;
``search`` runs the suite's own capacity search (``scheduler.levels``) against it, each level a
window of ``level_s`` seconds from an empty queue, as the driver runs them.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from scheduler.levels import Capacity, CapacitySearch, LevelResult, capacity, level_result


@dataclass(frozen=True)
class Queue:
    slots: int = 8
    first_s: float = 0.05
    total_s: float = 0.36

    @property
    def throughput(self) -> float:
        return self.slots / self.total_s

    def window(self, rate: float, seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Poisson arrivals for ``seconds`` into an empty queue: (send times, TTFTs)."""
        sends = np.sort(rng.uniform(0.0, seconds, rng.poisson(rate * seconds)))
        free = [0.0] * self.slots
        ttft = np.empty(sends.size)
        for i, arrival in enumerate(sends):
            begin = max(arrival, heapq.heappop(free))
            ttft[i] = begin - arrival + self.first_s
            heapq.heappush(free, begin + self.total_s)
        return sends, ttft


@dataclass(frozen=True)
class StepQueue:
    """The emulator's engine as ``--max-num-seqs M --step-ms D --step-ms-per-seq 0 --prefill-ms-per-token 0``
    runs it, for requests of ``tokens`` output tokens (``--ignore-eos``) and short prompts: steps of D ms
    back to back while there is work (an idle engine starts one at the next arrival); a request waiting
    at a step's start takes a free slot, its first token comes at that step's end, and its slot is free
    after ``tokens`` steps."""

    slots: int = 8
    step_s: float = 0.02
    tokens: int = 18

    @property
    def throughput(self) -> float:
        return self.slots / (self.tokens * self.step_s)

    def window(self, rate: float, seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Poisson arrivals for ``seconds`` into an idle engine: (send times, TTFTs)."""
        sends = np.sort(rng.uniform(0.0, seconds, rng.poisson(rate * seconds)))
        ttft = np.empty(sends.size)
        # steps each running request has to go
        left: list[int] = []
        # indices, first come first served
        waiting: list[int] = []
        t, i, head = 0.0, 0, 0
        while i < sends.size or left or head < len(waiting):
            if not left and head == len(waiting):
                t = max(t, float(sends[i]))
            while i < sends.size and sends[i] <= t:
                waiting.append(i)
                i += 1
            admitted = []
            while head < len(waiting) and len(left) + len(admitted) < self.slots:
                admitted.append(waiting[head])
                head += 1
            t += self.step_s
            for k in admitted:
                ttft[k] = t - sends[k]
            left = [n - 1 for n in left if n > 1] + [self.tokens - 1] * len(admitted)
            left = [n for n in left if n > 0]
        return sends, ttft


def attainment(queue: Queue | StepQueue, rate: float, ttft_s: float, seconds: float = 20_000.0, seed: int = 1) -> float:
    """The long-run share of requests with TTFT within ``ttft_s`` (the first 100 s left out)."""
    sends, ttft = queue.window(rate, seconds, np.random.default_rng(seed))
    return float((ttft[sends > 100.0] <= ttft_s).mean())


def true_capacity(queue: Queue | StepQueue, ttft_s: float, target: float, precision: float = 0.02) -> float:
    """The rate at which the long-run attainment crosses ``target`` (bisection, to ``precision`` req/s)."""
    low, high = 0.05 * queue.throughput, queue.throughput
    while high - low > precision:
        mid = (low + high) / 2
        low, high = (mid, high) if attainment(queue, mid, ttft_s) >= target else (low, mid)
    return (low + high) / 2


def search(queue: Queue | StepQueue, ttft_s: float, target: float, level_s: float, seed: int) -> Capacity:
    """The suite's capacity search (its plan, extensions and answer) against the queue."""
    rng = np.random.default_rng(seed)
    plan = CapacitySearch(target, saturating_concurrency=4 * queue.slots)
    slo = {"ttft_ms": ttft_s * 1000.0}
    results: list[LevelResult] = []
    while (level := plan.next_level(results)) is not None:
        # the throughput level: a closed loop at the queue's throughput
        if level.kind != "rate":
            results.append(LevelResult(level, 1000, 0, queue.throughput))
            continue
        sends: list[np.ndarray] = []
        ttfts: list[np.ndarray] = []
        windows: list[tuple[float, float]] = []
        while True:
            # each extension a window of its own, the queue drained between
            offset = 2 * level_s * len(windows)
            s, t = queue.window(level.value, level_s, rng)
            sends.append(s + offset)
            ttfts.append(t)
            windows.append((offset, offset + level_s))
            start, ttft = np.concatenate(sends), np.concatenate(ttfts)
            n = start.size
            result = level_result(
                level, start, np.ones(n, bool), np.zeros(n, bool), ttft, np.full(n, np.nan), ttft, windows, slo
            )
            if not plan.extend(result, results):
                break
        results.append(result)
    return capacity(results, target)
