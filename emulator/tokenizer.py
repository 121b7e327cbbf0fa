"""The emulator's own tokenizer: words, punctuation and special tokens.

Deterministic ids from a CRC of the piece, so equal text gives equal ids and
the prefix cache sees real reuse. The chat template is Llama-3 shaped.
"""

from __future__ import annotations

import re
import zlib

_PIECE = re.compile(r"<\|[a-z_]+\|>|\w+|[^\w\s]")
BOS = "<|begin_of_text|>"


def tokenize(text: str) -> list[int]:
    crc = zlib.crc32
    return [crc(p.encode()) & 0x7FFFFFFF for p in _PIECE.findall(text)]


def apply_chat_template(messages: list[dict]) -> str:
    parts = [BOS]
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):  # OpenAI content parts
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        parts.append(f"<|start_header_id|>{m.get('role', 'user')}<|end_header_id|>\n\n{content or ''}<|eot_id|>")
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


def prompt_ids(prompt: str, add_special_tokens: bool = True) -> list[int]:
    return tokenize((BOS if add_special_tokens else "") + prompt)


def chat_ids(messages: list[dict]) -> list[int]:
    return tokenize(apply_chat_template(messages))
