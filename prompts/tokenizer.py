"""Counting tokens as the served model does: a local tokenizer, or the server's ``/tokenize``.

Chat prompts are counted with the chat template applied, as the server will.
"""

from __future__ import annotations

import os
from typing import Protocol

import orjson

from users.http import Connection, Target, TransportError


class TokenCounter(Protocol):
    name: str

    def count(self, content: str, chat: bool) -> int: ...


def _messages(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


class LocalTokenizer:
    """A transformers tokenizer from a local folder or the HF cache; never downloads."""

    def __init__(self, name_or_path: str) -> None:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer  # heavy: imported only when a tokenizer is asked for

        from prompts.source import PromptError

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
                from prompts.source import PromptError

                raise PromptError(f"{self.name} has no chat template; use --endpoint completions or another tokenizer")
            out = self._tok.apply_chat_template(_messages(content), add_generation_prompt=True, tokenize=True)
            ids = out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out
            return len(ids)
        return len(self._tok(content).input_ids)


class ServerTokenizer:
    """vLLM's ``POST /tokenize`` (applies the chat template for ``messages``)."""

    def __init__(self, target: Target, model: str, headers: dict[str, str], timeout: float = 30.0) -> None:
        self.target = target
        self.model = model
        self.headers = {"Content-Type": "application/json", **headers}
        self.timeout = timeout
        self._idle: list[Connection] = []
        self.name = f"{target.host_header}/tokenize"

    def count(self, content: str, chat: bool) -> int:
        from prompts.source import PromptError

        body: dict[str, object] = {"model": self.model}
        if chat:
            body.update(messages=_messages(content), add_generation_prompt=True)
        else:
            body.update(prompt=content, add_special_tokens=True)
        conn = self._idle.pop() if self._idle else Connection(self.target, read_timeout=self.timeout)
        try:
            head, raw = conn.request("POST", "/tokenize", orjson.dumps(body), self.headers)
        except TransportError as exc:
            conn.close()
            raise PromptError(f"cannot count tokens with {self.name}: {exc}") from None
        self._idle.append(conn)
        if head.status in (404, 405):
            raise PromptError(
                f"the server has no /tokenize endpoint (HTTP {head.status}); pass --tokenizer NAME_OR_PATH "
                f"(the served model's tokenizer) so prompts can be sized"
            )
        if head.status != 200:
            raise PromptError(f"{self.name} answered HTTP {head.status}: {raw[:200].decode('utf-8', 'replace')}")
        try:
            return int(orjson.loads(raw)["count"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise PromptError(f"{self.name} did not return a token count") from None

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
