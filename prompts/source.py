"""What a prompt source hands out, and the error it raises on bad input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class PromptError(Exception):
    """Bad prompt input (dataset, tokenizer, lengths): one line that says how to fix it."""


@dataclass(frozen=True, slots=True)
class Prompt:
    content: str  # the user message (chat) or the whole prompt (completions)
    input_tokens: int | None = None  # counted length including the chat template, when known
    group: int | None = None  # shared-prefix group
    max_tokens: int | None = None  # a dataset's own output length, when it has one
    unique_from: int | None = None  # tokens after which no other prompt of the run shares it (synthetic sets)
    ideal_cached: int | None = None  # a trace's: what an unbounded prefix cache would hold of it when it arrives
    images: tuple[str, ...] | None = None  # a dataset's images for it (URLs, data: URLs); None: none given


class PromptSource(Protocol):
    def next_prompt(self) -> Prompt: ...
