"""Counting tokens as the served model does.

A ``TokenCounter`` is anything with ``count(content, chat)``: a local tokenizer here,
or the server's ``/tokenize`` (``llmclient.control.ServerTokenizer``). Chat prompts are
counted with the chat template applied, as the server will.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from prompts.source import PromptError


class TokenCounter(Protocol):
    name: str

    def count(self, content: str, chat: bool) -> int: ...


# a text's first word in single_token_words: the words after it are counted with their leading space
LEAD = "the"


def single_token_words(counter: TokenCounter, chat: bool, overhead: int, words: tuple[str, ...]) -> list[str]:
    """The words the tokenizer counts as one token each after ``LEAD`` (``overhead``: the count of ``LEAD``
    alone), found in O(bad words x log n) counts."""

    def bad(group: tuple[str, ...]) -> list[str]:
        if counter.count(" ".join((LEAD, *group)), chat) - overhead == len(group):
            return []
        if len(group) == 1:
            return list(group)
        mid = len(group) // 2
        return bad(group[:mid]) + bad(group[mid:])

    rejected = set(bad(words))
    return [w for w in words if w not in rejected]


def _messages(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


class LocalTokenizer:
    """A transformers tokenizer from a local folder or the HF cache; never downloads."""

    def __init__(self, name_or_path: str) -> None:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        # heavy: imported only when a tokenizer is asked for
        from transformers import AutoTokenizer

        try:
            self._tok = AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc.__class__.__name__
            raise PromptError(
                f"cannot load tokenizer {name_or_path!r} offline ({first}); give a local folder with "
                f"tokenizer files, or a model already in the HF cache"
            ) from None
        self.name = f"tokenizer {name_or_path}"
        self.has_chat_template = bool(getattr(self._tok, "chat_template", None))

    def count(self, content: str, chat: bool) -> int:
        if chat:
            if not self.has_chat_template:
                raise PromptError(f"{self.name} has no chat template; use --endpoint completions or another tokenizer")
            out: Any = self._tok.apply_chat_template(_messages(content), add_generation_prompt=True, tokenize=True)
            ids = out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out
            return len(ids)
        return len(self._tok(content).input_ids)
