"""Synthetic shared-prefix prompt sets of exact token length.

Each prompt is ``prefix(group) + suffix``: ``--prefix-groups`` distinct shared
prefixes of ``--prefix-tokens`` tokens, and a suffix unique to the request (it
starts with the request's own tag, so no cache block after the prefix is shared),
so the only reuse between requests is the prefix. A body that fitted is reused
behind the next tag: counting a prompt is then one call, the check, instead of a
search (with the server's ``/tokenize``, these calls are load on the server). Lengths are counted with the
served model's tokenizer, chat template included, and adjusted until the whole
prompt is ``--input-tokens`` long (optionally drawn with a spread).
The text is natural-looking sentences, not one repeated token.

The same seed gives the same prompts, also when prompts are built concurrently (the
counts are I/O, so builds interleave and finish in any order): each call draws all its
random numbers before its first count, and the body it reuses is the one that the first
call of its kind fitted, which later calls of that kind wait for.
"""

from __future__ import annotations

import random

from gevent.lock import Semaphore

from prompts.source import Prompt, PromptError
from prompts.text import join, words
from prompts.tokenizer import TokenCounter

MAX_ADJUST = 6


class SharedPrefixPrompts:
    def __init__(
        self,
        counter: TokenCounter,
        chat: bool,
        input_tokens: int,
        prefix_tokens: int = 0,
        prefix_groups: int = 1,
        input_tokens_stddev: float = 0.0,
        seed: int = 0,
        stream: str = "0",
        prefix_salt: str = "",
    ) -> None:
        if prefix_tokens < 0 or prefix_groups < 1:
            raise PromptError("--prefix-tokens must be >= 0 and --prefix-groups >= 1")
        if prefix_tokens >= input_tokens:
            raise PromptError(
                f"--prefix-tokens ({prefix_tokens}) must be smaller than --input-tokens ({input_tokens}): "
                "each request needs a unique suffix"
            )
        self.counter = counter
        self.chat = chat
        self.input_tokens = input_tokens
        self.prefix_tokens = prefix_tokens
        self.groups = prefix_groups
        self.stddev = input_tokens_stddev
        self.stream = stream
        # prefixes depend on the seed alone, so every worker shares them; suffixes also on the stream
        prefix_rng = random.Random(f"prefix-{seed}{prefix_salt}")  # a salt gives a set of prefixes of its own
        self._rng = random.Random(f"suffix-{seed}-{stream}")
        self._pool = words(random.Random(f"pool-{seed}-{stream}"), max(4 * input_tokens, 512))
        self._overhead = counter.count("", chat)
        self.prefixes = [self._build_prefix(prefix_rng, g) for g in range(prefix_groups)] if prefix_tokens else [""]
        self._count = 0
        # (group, target length, tag length) -> (pool offset, words) of the body that the first prompt of
        # that kind fitted (None: it found no exact fit); the later ones reuse it behind their own tag, so
        # one count (the check) usually suffices. Each kind's lock makes them wait for the first one's search
        # (concurrent builds are greenlets: users/prompt_pool.py); other kinds go on meanwhile.
        self._fitted: dict[tuple[int, int, int], tuple[int, int] | None] = {}
        self._fitting: dict[tuple[int, int, int], Semaphore] = {}

    def _measure(self, text: str) -> int:
        return self.counter.count(text, self.chat) - self._overhead

    def _build_prefix(self, rng: random.Random, group: int) -> str:
        """A text whose tokens, in front of any suffix, number ``prefix_tokens``."""
        head = f"Shared context {group}."
        pieces = words(rng, self.prefix_tokens * 2 + 16)
        n = max(self.prefix_tokens - 4, 1)
        text = ""
        for _ in range(MAX_ADJUST):
            text = head + " " + join(pieces[:n]) + "\n\n"
            got = self._measure(text)
            if got == self.prefix_tokens:
                break
            n = max(1, n + (self.prefix_tokens - got))
        return text

    def _target(self) -> int:
        if self.stddev <= 0:
            return self.input_tokens
        low = self.prefix_tokens + 8
        return max(low, round(self._rng.gauss(self.input_tokens, self.stddev)))

    def next_prompt(self) -> Prompt:
        self._count += 1
        # every random number of this prompt is drawn before its first count (see the module's note)
        group = self._rng.randrange(self.groups)
        target = self._target()
        tag = f"Request {self.stream}-{' '.join(str(self._count))}:"  # digit by digit: its length in tokens follows its length
        n = max(target - self.prefix_tokens - len(tag.split()) - 2, 1)
        offset = self._rng.randrange(0, max(len(self._pool) - n, 1))
        prefix = self.prefixes[group]
        key = (group, target, len(tag))
        lock = self._fitting.get(key)
        if lock is None:  # the first of its kind: search from its own words, keep the fit
            lock = self._fitting[key] = Semaphore()
            with lock:
                got, text, fit = self._fit(prefix, tag, target, offset, n)
                self._fitted[key] = fit
            return self._prompt(group, got, text)
        if key not in self._fitted:
            with lock:  # wait for the first of its kind (if its search failed, search from our own words)
                pass
        fitted = self._fitted.get(key)
        if fitted is not None:
            offset, n = fitted
        got, text, _ = self._fit(prefix, tag, target, offset, n)
        return self._prompt(group, got, text)

    def _fit(self, prefix: str, tag: str, target: int, offset: int, n: int) -> tuple[int, str, tuple[int, int] | None]:
        """Adjust the number of pool words from ``offset`` until the prompt counts ``target`` tokens:
        the count and text closest to it, and (offset, words) when exact."""
        best: tuple[int, str] | None = None
        for _ in range(MAX_ADJUST):
            body = self._pool[offset : offset + n]
            if len(body) < n:  # wrap around the pool
                body = body + self._pool[: n - len(body)]
            text = prefix + tag + " " + join(body)
            got = self.counter.count(text, self.chat)
            if best is None or abs(got - target) < abs(best[0] - target):
                best = (got, text)
            if got == target:
                return got, text, (offset, n)
            n = max(1, n + (target - got))
        assert best is not None
        return best[0], best[1], None

    def _prompt(self, group: int, tokens: int, text: str) -> Prompt:
        # the template's tokens and the shared prefix come first; the request's own tag after them
        return Prompt(text, tokens, group if self.prefix_tokens else None, unique_from=self.prefix_tokens
                      + self._overhead)  # fmt: skip
