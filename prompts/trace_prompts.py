"""Prompts for a replayed trace: exactly each request's ``input_length`` tokens, equal hash ids identical blocks.

Each block of ``--trace-block-tokens`` tokens is words drawn from a generator seeded by its hash id
(requests of formats without hash ids get blocks of their own), from a vocabulary of words the served
model's tokenizer counts as one token each, so a prompt's length is known without counting it: the
chat template's tokens (or the BOS token) and one fixed first word take the first positions, and
the last block is cut to fit. Two requests share exactly the blocks their hash ids share. On ``/v1/completions`` (one BOS
token in front) the blocks line up with the server's own when its block size divides the trace's,
so its hits can be predicted to the token; on chat the template's closing tokens shift them by a
few tokens, and the server may hold up to one of its blocks less per request than the ideal. The
first prompts are counted once to check that the tokenizer agrees.
"""

from __future__ import annotations

import random
from functools import lru_cache

from prompts.source import Prompt, PromptError
from prompts.text import VOCABULARY
from prompts.tokenizer import LEAD, TokenCounter, single_token_words
from scheduler.trace import Trace, TraceError, check_lengths, ideal_cached_tokens

# prompts counted at the start to check the tokenizer agrees
CHECKED_PROMPTS = 3


class TracePrompts:
    def __init__(self, counter: TokenCounter, chat: bool, trace: Trace, seed: int = 0) -> None:
        self.trace = trace
        self.seed = seed
        # the template's tokens (or BOS) and the lead word
        self.overhead = counter.count(LEAD, chat)
        try:
            check_lengths(trace, getattr(counter, "max_model_len", None), self.overhead)
        except TraceError as exc:
            raise PromptError(str(exc)) from None
        self.vocabulary = single_token_words(counter, chat, self.overhead, VOCABULARY)
        if len(self.vocabulary) < 64:
            raise PromptError(f"{counter.name} splits too many common words: cannot build exact-length trace prompts")
        self.ideal = ideal_cached_tokens(trace)
        self._next = 0
        # a block's words, drawn once
        self._words = lru_cache(maxsize=8192)(self._make_words)
        # and a stretch of them as text, joined once
        self._text = lru_cache(maxsize=8192)(self._make_text)
        for request in trace.requests[:CHECKED_PROMPTS]:
            got = counter.count(self.prompt_for(request.index).content, chat)
            if got != request.input_length:
                raise PromptError(
                    f"{counter.name} counts {got} tokens in the prompt built for {request.where}, not its "
                    f"input_length {request.input_length}: its tokenizer merges words across spaces"
                )

    def _make_words(self, key: str) -> tuple[str, ...]:
        """The words of the block ``key`` (its hash id, or a request's own block)."""
        rng = random.Random(f"trace-block-{self.seed}-{key}")
        return tuple(rng.choices(self.vocabulary, k=self.trace.block_tokens))

    def _make_text(self, key: str, start: int, end: int) -> str:
        return " ".join(self._words(key)[start:end])

    def prompt_for(self, index: int) -> Prompt:
        """The prompt of the trace's request ``index``."""
        request = self.trace.requests[index]
        b = self.trace.block_tokens
        blocks = request.hash_ids or tuple(range(-(-request.input_length // b)))
        # no hash ids: every block is this request's alone
        own = not request.hash_ids
        pieces = [LEAD]
        n = request.input_length
        # block j holds the prompt's tokens j*b to (j+1)*b
        for j, h in enumerate(blocks):
            # the fixed part comes first
            low, high = max(j * b, self.overhead), min((j + 1) * b, n)
            if high > low:
                pieces.append(self._text(f"r{request.index}-{j}" if own else str(h), low - j * b, high - j * b))
        # the server can hold no more than the ideal: a hit beyond it (beyond the template without hash ids)
        # is a cache warm from an earlier replay
        ideal = None if own else self.ideal[index]
        return Prompt(
            " ".join(pieces),
            request.input_length,
            max_tokens=request.output_length,
            unique_from=self.overhead if ideal is None else ideal,
            ideal_cached=ideal,
        )

    def next_prompt(self) -> Prompt:
        """The trace's prompts in order, round and round (a warm-up's, a check's)."""
        prompt = self.prompt_for(self._next % len(self.trace.requests))
        self._next += 1
        return prompt
