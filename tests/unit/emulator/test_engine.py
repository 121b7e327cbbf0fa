"""The emulator's engine settings that a tuning grid sweeps: each changes what the server does, step by step."""

from __future__ import annotations

import asyncio
import itertools

from emulator.engine import Engine, EngineConfig, Sequence
from emulator.metrics import Metrics


class Tokens:
    """A sink that notes the engine step at which each of a sequence's tokens came out."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.steps: dict[str, list[int]] = {}
        self.done: set[str] = set()

    def on_token(self, seq: Sequence, _index: int, finish_reason: str) -> None:
        self.steps.setdefault(seq.request_id, []).append(self.engine.steps)
        if finish_reason:
            self.done.add(seq.request_id)

    def on_abort(self, seq: Sequence) -> None:
        self.done.add(seq.request_id)


async def run(config: EngineConfig, prompts: dict[str, list[int]], max_tokens: int, later: str = "") -> Tokens:
    """The sequences, the one named ``later`` sent once the others are decoding; every token's step."""
    engine = Engine(config, Metrics("m"))
    sink = Tokens(engine)
    task = asyncio.create_task(engine.run())
    for name, prompt in prompts.items():
        if name != later:
            engine.submit(Sequence(name, prompt, max_tokens, True, sink))
    while later and len(sink.steps) < len(prompts) - 1:
        await asyncio.sleep(0.001)
    if later:
        engine.submit(Sequence(later, prompts[later], max_tokens, True, sink))
    while len(sink.done) < len(prompts):
        await asyncio.sleep(0.001)
    task.cancel()
    return sink


FAST = {
    "step_ms": 0.2,
    "step_ms_per_seq": 0.0,
    "prefill_ms_per_token": 0.0,
    "max_num_batched_tokens": 512,
    "eos_prob": 0.0,
}


def test_without_chunked_prefill_a_long_prompt_stalls_the_decoding_ones_for_a_step():
    # 2,048 tokens: four 512-token chunks
    prompts = {"decoding": list(range(16)), "long": list(range(1000, 3048))}
    for chunked in (True, False):
        sink = asyncio.run(run(EngineConfig(**FAST, enable_chunked_prefill=chunked), prompts, 40, later="long"))
        steps = sink.steps["decoding"]
        gaps = [b - a for a, b in itertools.pairwise(steps)]
        long_first = sink.steps["long"][0]
        # the long prompt prefills in chunks beside the decoding sequence, which never skips a step
        if chunked:
            assert max(gaps) == 1 and long_first - steps[0] >= 4
        # it prefills whole, in a step of its own: the decoding sequence waits that step out
        else:
            assert max(gaps) == 2


async def cached_tokens_of_a_repeat(caching: bool, shared: list[int]) -> int:
    """Two prompts sharing ``shared``, the second sent once the first is done: its cached tokens."""
    engine = Engine(EngineConfig(**FAST, enable_prefix_caching=caching), Metrics("m"))
    sink = Tokens(engine)
    task = asyncio.create_task(engine.run())
    first, second = Sequence("first", [*shared, 1], 2, True, sink), Sequence("second", [*shared, 2], 2, True, sink)
    for seq in (first, second):
        engine.submit(seq)
        while seq.request_id not in sink.done:
            await asyncio.sleep(0.001)
    task.cancel()
    return second.cached


def test_without_prefix_caching_no_prompt_finds_cached_blocks():
    shared = list(range(512))
    assert asyncio.run(cached_tokens_of_a_repeat(True, shared)) == 512
    assert asyncio.run(cached_tokens_of_a_repeat(False, shared)) == 0
