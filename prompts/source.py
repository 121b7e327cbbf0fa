"""What a prompt source hands out, and the error it raises on bad input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class PromptError(Exception):
    """Bad prompt input (dataset, tokenizer, lengths): one line that says how to fix it."""


@dataclass(frozen=True, slots=True)
class Prompt:
    # the user message (chat) or the whole prompt (completions)
    content: str
    # counted length including the chat template, when known
    input_tokens: int | None = None
    # shared-prefix group
    group: int | None = None
    # a dataset's own output length, when it has one
    max_tokens: int | None = None
    # tokens after which no other prompt of the run shares it (synthetic sets)
    unique_from: int | None = None
    # a trace's: what an unbounded prefix cache would hold of it when it arrives
    ideal_cached: int | None = None
    # a dataset's images for it (URLs, data: URLs); None: none given
    images: tuple[str, ...] | None = None


class PromptSource(Protocol):
    def next_prompt(self) -> Prompt: ...
