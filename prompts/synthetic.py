"""Synthetic shared-prefix prompt sets of exact token length.

Each prompt is ``prefix(group) + suffix``: ``--prefix-groups`` distinct shared
prefixes of ``--prefix-tokens`` tokens, and a suffix unique to the request (it
starts with the request's own tag, so no cache block after the prefix is shared),
so the only reuse between requests is the prefix. Lengths are counted with the
served model's tokenizer, chat template included, until the whole prompt is
``--input-tokens`` long (optionally drawn with a spread): the number of words is
adjusted until the prompt is at most that long (a word may be several tokens, and
how many can depend on its neighbours), then the rest is made up with words the
tokenizer counts as one token each (found once, with a few counts). A body that
fitted is reused behind the next tag: counting a prompt is then one call, the
check, instead of a search (with the server's ``/tokenize``, these calls are load
on the server). The text is natural-looking sentences, not one repeated token.

The same seed gives the same prompts, also when prompts are built concurrently (the
counts are I/O, so builds interleave and finish in any order): each call draws all its
random numbers before its first count, and the body it reuses is the one that the first
call of its kind fitted, which later calls of that kind wait for.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from gevent.lock import Semaphore

from prompts.source import Prompt, PromptError
from prompts.text import VOCABULARY, join, words
from prompts.tokenizer import LEAD, TokenCounter, single_token_words

# counts at most to fit one text
MAX_ADJUST = 6
# tokens at most made up with single-token words
MAX_PAD = 256
# the commonest words, tried as single tokens
PAD_CANDIDATES = 64


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
        # a salt gives a set of prefixes of its own
        prefix_rng = random.Random(f"prefix-{seed}{prefix_salt}")
        self._rng = random.Random(f"suffix-{seed}-{stream}")
        self._pool = words(random.Random(f"pool-{seed}-{stream}"), max(4 * input_tokens, 512))
        self._overhead = counter.count("", chat)
        self._singles = single_token_words(counter, chat, counter.count(LEAD, chat), VOCABULARY[:PAD_CANDIDATES])
        self.prefixes = [self._build_prefix(prefix_rng, g) for g in range(prefix_groups)] if prefix_tokens else [""]
        self._count = 0
        # (group, target length, tag length) -> (pool offset, words, padding words) of the body that the first
        # prompt of that kind fitted (None: it found no exact fit); the later ones reuse it behind their own
        # tag, so one count (the check) usually suffices. Each kind's lock makes them wait for the first one's
        # search (concurrent builds are greenlets: users/supply/prompt_pool.py); other kinds go on meanwhile.
        self._fitted: dict[tuple[int, int, int], tuple[int, int, int] | None] = {}
        self._fitting: dict[tuple[int, int, int], Semaphore] = {}

    def _measure(self, text: str) -> int:
        return self.counter.count(text, self.chat) - self._overhead

    def _build_prefix(self, rng: random.Random, group: int) -> str:
        """A text whose tokens, in front of any suffix, number ``prefix_tokens``."""
        head = f"Shared context {group}. "
        pieces = words(rng, self.prefix_tokens * 2 + 16)
        _, text, _ = self._fit(
            lambda n, pad: head + self._body(pieces, 0, n, pad) + "\n\n",
            self._measure,
            self.prefix_tokens,
            max(self.prefix_tokens - 4, 1),
        )
        return text

    def _body(self, pool: list[str], offset: int, n: int, pad: int) -> str:
        """``n`` words of ``pool`` from ``offset`` (round the end), then ``pad`` single-token words."""
        body = pool[offset : offset + n]
        # wrap around the pool
        if len(body) < n:
            body = body + pool[: n - len(body)]
        singles = self._singles
        return join(body + [singles[(offset + n + i) % len(singles)] for i in range(pad)])

    def _fit(
        self, compose: Callable[[int, int], str], measure: Callable[[str], int], target: int, n: int, pad: int = 0
    ) -> tuple[int, str, tuple[int, int] | None]:
        """Count ``compose(words, padding)`` from ``n`` words and ``pad`` padding until it measures ``target``:
        fewer words while it is too long, more while it is far too short, else padding (each one token):
        the count and text closest to the target, and (words, padding) when exact."""
        best: tuple[int, str] | None = None
        for _ in range(MAX_ADJUST):
            text = compose(n, pad)
            got = measure(text)
            if best is None or abs(got - target) < abs(best[0] - target):
                best = (got, text)
            if got == target:
                return got, text, (n, pad)
            if got < target and self._singles and pad + target - got <= MAX_PAD:
                pad += target - got
            elif got > target and pad >= got - target:
                pad -= got - target
            # too long beyond the padding, or short beyond MAX_PAD: change the words, drop the padding
            else:
                # (a word is a token at least: fewer words undershoot)
                n, pad = max(1, n + (target - got)), 0
        assert best is not None
        return best[0], best[1], None

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
        # digit by digit: its length in tokens follows its length
        tag = f"Request {self.stream}-{' '.join(str(self._count))}:"
        n = max(target - self.prefix_tokens - len(tag.split()) - 2, 1)
        offset = self._rng.randrange(0, max(len(self._pool) - n, 1))
        prefix = self.prefixes[group]
        key = (group, target, len(tag))
        lock = self._fitting.get(key)
        # the first of its kind: search from its own words, keep the fit
        if lock is None:
            lock = self._fitting[key] = Semaphore()
            with lock:
                got, text, fit = self._fit_suffix(prefix, tag, target, offset, n, 0)
                self._fitted[key] = None if fit is None else (offset, *fit)
            return self._prompt(group, got, text)
        if key not in self._fitted:
            # wait for the first of its kind (if its search failed, search from our own words)
            with lock:
                pass
        fitted = self._fitted.get(key)
        pad = 0
        if fitted is not None:
            offset, n, pad = fitted
        got, text, _ = self._fit_suffix(prefix, tag, target, offset, n, pad)
        return self._prompt(group, got, text)

    def _fit_suffix(
        self, prefix: str, tag: str, target: int, offset: int, n: int, pad: int
    ) -> tuple[int, str, tuple[int, int] | None]:
        """The prompt behind ``prefix`` and ``tag`` with pool words from ``offset``, fitted to ``target``
        (starting from ``n`` words and ``pad`` padding words: a fit that held for another tag)."""
        start = prefix + tag + " "

        def compose(words: int, padding: int) -> str:
            return start + self._body(self._pool, offset, words, padding)

        def count(text: str) -> int:
            return self.counter.count(text, self.chat)

        return self._fit(compose, count, target, n, pad)

    def _prompt(self, group: int, tokens: int, text: str) -> Prompt:
        # the template's tokens and the shared prefix come first; the request's own tag after them
        return Prompt(
            text, tokens, group if self.prefix_tokens else None, unique_from=self.prefix_tokens + self._overhead
        )
