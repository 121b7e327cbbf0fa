"""Synthetic prompts of roughly a target length, unique per request.

Each prompt starts with a unique request tag, so no two share a cached prefix;
the body is a window into a pool of natural text built once at start-up.
Lengths are approximate here (about one token per word or punctuation mark).
"""

from __future__ import annotations

import random

from prompts.text import join, words


class SyntheticPrompts:
    def __init__(self, input_tokens: int, seed: int = 0, pool_factor: int = 4) -> None:
        self.input_tokens = input_tokens
        self._rng = random.Random(seed)
        self._pool = words(self._rng, max(input_tokens * pool_factor, 256))
        self._count = 0
        self._tag = f"{seed:x}"

    def next_prompt(self) -> str:
        self._count += 1
        body_len = max(self.input_tokens - 6, 1)
        offset = self._rng.randrange(0, len(self._pool) - body_len + 1) if len(self._pool) > body_len else 0
        head = f"Request {self._tag}-{self._count}:"
        return head + " " + join(self._pool[offset : offset + body_len])
