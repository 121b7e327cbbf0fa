"""The emulator's own tokenizer: sub-word pieces, counted the way byte-level BPE vocabularies count them.

Text is first cut into pre-tokens as Llama-3's tokenizer cuts it (special tokens; a word with its
leading space; up to three digits; a run of punctuation with the newlines after it; white space),
then each pre-token into sub-words:
- a word with its leading space is one token up to seven letters (common words are in the
  vocabulary with their space), longer ones are cut into pieces of four letters after the first six;
- a word without a leading space (at the start of the text, after punctuation or a newline) is cut
  into pieces of three letters, so the same word counts differently by what stands before it;
- a run of punctuation is one token per two marks; digits, white space and special tokens one each.
So a word's count depends on the word and on its neighbours, as with real sub-word tokenizers, and
a client that sizes prompts by adding words must count, not assume.

Deterministic ids from a CRC of each piece, so equal text gives equal ids and the prefix cache sees
real reuse. The chat template is Llama-3 shaped.
"""

from __future__ import annotations

import re
import zlib

_PRETOKEN = re.compile(
    r"<\|[a-z_]+\|>|'(?:s|t|re|ve|m|ll|d)| ?[A-Za-z]+| ?[0-9]{1,3}| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
BOS = "<|begin_of_text|>"
# letters of a word that, with its leading space, is still one token
WHOLE_WORD = 7
# a long word's first token, its further pieces; pieces of a word without a space
HEAD, PIECE, BARE = 6, 4, 3


def pieces(text: str) -> list[str]:
    """The sub-word pieces of ``text``, one per token."""
    out: list[str] = []
    for pre in _PRETOKEN.findall(text):
        if pre.startswith(" ") and pre[1:].isalpha():
            word = pre[1:]
            if len(word) <= WHOLE_WORD:
                out.append(pre)
            else:
                out.append(pre[: HEAD + 1])
                out.extend(word[i : i + PIECE] for i in range(HEAD, len(word), PIECE))
        elif pre.isalpha():
            out.extend(pre[i : i + BARE] for i in range(0, len(pre), BARE))
        elif pre.startswith("<|") or pre.strip(" ").isdigit() or not pre.strip():
            out.append(pre)
        else:
            out.extend(pre[i : i + 2] for i in range(0, len(pre), 2))
    return out


def tokenize(text: str) -> list[int]:
    crc = zlib.crc32
    return [crc(p.encode()) & 0x7FFFFFFF for p in pieces(text)]


def image_placeholder(url: str, tokens: int) -> str:
    """An image as ``tokens`` special tokens named from its bytes: equal images give equal ids (the prefix
    cache sees them as shared), different ones different ids."""
    name = "".join(chr(ord("a") + int(c, 16)) for c in f"{zlib.crc32(url.encode()):08x}")
    return f"<|img_{name}|>" * tokens


def _parts(content: list, image_tokens: int) -> str:
    """Content parts in order: an image as its placeholder tokens, text parts a space apart."""
    out = ""
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "image_url":
            out += image_placeholder(str((part.get("image_url") or {}).get("url", "")), image_tokens)
        else:
            out += (" " if out and not out.endswith("|>") else "") + str(part.get("text", ""))
    return out


def apply_chat_template(messages: list[dict], image_tokens: int = 0) -> str:
    parts = [BOS]
    for m in messages:
        content = m.get("content")
        # OpenAI content parts: text, and images as their placeholder tokens
        if isinstance(content, list):
            content = _parts(content, image_tokens)
        parts.append(f"<|start_header_id|>{m.get('role', 'user')}<|end_header_id|>\n\n{content or ''}<|eot_id|>")
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


def prompt_ids(prompt: str, add_special_tokens: bool = True) -> list[int]:
    return tokenize((BOS if add_special_tokens else "") + prompt)


def chat_ids(messages: list[dict], image_tokens: int = 0) -> list[int]:
    return tokenize(apply_chat_template(messages, image_tokens))
