"""Prompts from a file: JSONL of prompts, or ShareGPT-style conversations.

Accepted records (one JSON object per line, or one JSON array of them):
  {"prompt": "...", "output_tokens": 128}            (also "max_tokens")
  {"messages": [{"role": "user", "content": "..."}]}  (the last user message is sent)
  {"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}]}
For ShareGPT records the first human turn is the prompt; the reply's length in
words is a rough output length when no tokenizer is used.

Images (vision models): any record may list ``"images": ["a.jpg", "https://…"]`` (or
``"image": "…"``), and a user message's content may be OpenAI's parts (``{"type": "text", …}``,
``{"type": "image_url", "image_url": {"url": …}}``). A URL is sent as it is; a file (relative to
the dataset's folder) is read once and sent as a data: URL. When any record has images, every
prompt says how many it has (none: 0).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import replace

from prompts.images import image_ref
from prompts.source import Prompt, PromptError


def _parts(content: object) -> tuple[str, list[str]]:
    """A message's content: its text, and its image URLs (OpenAI's content parts)."""
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    urls: list[str] = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part, dict) and part.get("type") == "image_url":
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            if isinstance(url, str):
                urls.append(url)
    return "\n".join(texts), urls


def _images_of(rec: dict) -> list[str]:
    given = rec.get("images", rec.get("image"))
    given = [given] if isinstance(given, str) else given
    if given is None:
        return []
    if not isinstance(given, list) or not all(isinstance(g, str) and g for g in given):
        raise ValueError("images must be a list of image paths or URLs")
    return given


def _record_to_prompt(rec: object) -> Prompt | None:
    if not isinstance(rec, dict):
        return None
    out = rec.get("output_tokens", rec.get("max_tokens"))
    out = int(out) if isinstance(out, int | float) and out > 0 else None
    images = _images_of(rec)
    if isinstance(rec.get("prompt"), str) and rec["prompt"].strip():
        return Prompt(rec["prompt"], max_tokens=out, images=tuple(images) if images else None)
    msgs = rec.get("messages")
    if isinstance(msgs, list):
        users = [_parts(m.get("content")) for m in msgs if isinstance(m, dict) and m.get("role") == "user"]
        if users and users[-1][0].strip():
            text, urls = users[-1]
            return Prompt(text, max_tokens=out, images=tuple(urls + images) if urls or images else None)
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
    try:
        prompts = [p for p in (_record_to_prompt(r) for r in records) if p is not None]
    except ValueError as exc:
        raise PromptError(f"--dataset {path}: {exc}") from None
    if not prompts:
        raise PromptError(f"--dataset {path}: no usable prompts (expected prompt, messages or conversations records)")
    return _with_images(prompts, path)


def _with_images(prompts: list[Prompt], path: str) -> list[Prompt]:
    """Files read into data: URLs (each once); when any prompt has images, every prompt's count said."""
    if all(p.images is None for p in prompts):
        return prompts
    folder = os.path.dirname(os.path.abspath(path))
    urls: dict[str, str] = {}
    try:
        for ref in {ref for p in prompts for ref in p.images or ()}:
            urls[ref] = image_ref(ref, folder)
    except ValueError as exc:
        raise PromptError(f"--dataset {path}: {exc}") from None
    return [replace(p, images=tuple(urls[ref] for ref in p.images or ())) for p in prompts]


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
