"""Prompts from a file: JSONL of prompts, or ShareGPT-style conversations.

Accepted records (one JSON object per line, or one JSON array of them):
  {"prompt": "...", "output_tokens": 128}            (also "max_tokens")
  {"messages": [{"role": "user", "content": "..."}]}  (the last user message is sent)
  {"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}]}
For ShareGPT records the first human turn is the prompt; the reply's length in
words is a rough output length when no tokenizer is used.
"""

from __future__ import annotations

import json
import os
import random

from prompts.source import Prompt, PromptError


def _record_to_prompt(rec: object) -> Prompt | None:
    if not isinstance(rec, dict):
        return None
    out = rec.get("output_tokens", rec.get("max_tokens"))
    out = int(out) if isinstance(out, int | float) and out > 0 else None
    if isinstance(rec.get("prompt"), str) and rec["prompt"].strip():
        return Prompt(rec["prompt"], max_tokens=out)
    msgs = rec.get("messages")
    if isinstance(msgs, list):
        users = [m.get("content") for m in msgs if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], str) and users[-1].strip():
            return Prompt(users[-1], max_tokens=out)
    conv = rec.get("conversations") or rec.get("conversation")
    if isinstance(conv, list):
        turns = [t for t in conv if isinstance(t, dict) and isinstance(t.get("value"), str)]
        for i, turn in enumerate(turns):
            if turn.get("from") in ("human", "user") and turn["value"].strip():
                reply = turns[i + 1]["value"] if i + 1 < len(turns) else ""
                return Prompt(turn["value"], max_tokens=out or (len(reply.split()) or None))
    return None


def load_dataset(path: str) -> list[Prompt]:
    if not os.path.isfile(path):
        raise PromptError(f"--dataset {path}: no such file")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"--dataset {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    stripped = text.lstrip()
    records: list[object] = []
    if stripped.startswith("["):
        try:
            records = json.loads(stripped)
        except ValueError as exc:
            raise PromptError(f"--dataset {path}: not valid JSON ({exc})") from None
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                raise PromptError(f"--dataset {path}: line {n} is not valid JSON") from None
    prompts = [p for p in (_record_to_prompt(r) for r in records) if p is not None]
    if not prompts:
        raise PromptError(f"--dataset {path}: no usable prompts (expected prompt, messages or conversations records)")
    return prompts


class DatasetPrompts:
    """Cycles through a dataset in a seeded shuffled order."""

    def __init__(self, prompts: list[Prompt], seed: int = 0, stream: str = "0") -> None:
        self._prompts = list(prompts)
        random.Random(f"dataset-{seed}-{stream}").shuffle(self._prompts)
        self._i = 0

    def next_prompt(self) -> Prompt:
        p = self._prompts[self._i % len(self._prompts)]
        self._i += 1
        return p
