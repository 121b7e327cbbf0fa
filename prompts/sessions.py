"""Sessions: conversations and agents' runs of several turns, each re-sending the whole history.

A session's plan is its turns (``Turn``): the first is one of the run's prompts (its shared prefix is the
system prompt every session shares); each later one adds, after the previous answer and a gap, a new
user message (``user``) or a tool's result (``tool``, after the tool's time) of ``new_tokens`` tokens.
Plans come from the options (``synthetic_plan``) or from a session file (``load_session_file``: JSONL,
one session per line, exact in lengths, its gaps scaled in time; or ShareGPT conversations, their human
messages sent as they are, each reply's length in words its answer's max_tokens).

The history's ideal (``history_ideal``): a turn's prompt begins with the previous turn's prompt, token for
token, so a prefix cache that kept the session holds at least that prompt's whole blocks. No Locust.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

from prompts.source import PromptError
from prompts.text import VOCABULARY
from prompts.tokenizer import LEAD, TokenCounter, single_token_words
from scheduler.spread import Spread

KINDS = ("user", "tool")
NO_TIME = Spread("fixed", 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn: what it adds to the history, its answer's length, and the gap before it (seconds)."""

    # user: a new user message; tool: a tool's result after the answer's tool call
    kind: str = "user"
    # the new message's tokens (the first turn's: None, the run's prompt)
    new_tokens: int | None = None
    # the answer's max_tokens (None: the run's --max-tokens)
    output_tokens: int | None = None
    # from the end of the previous answer to this turn's send (the first turn's: 0; None: --think-time's)
    gap_s: float | None = 0.0
    # a recorded conversation's own message ("": made to new_tokens)
    text: str = ""


@dataclass(frozen=True, slots=True)
class SessionPlan:
    turns: tuple[Turn, ...]
    # a session file's own id ("": the run names it)
    name: str = ""


@dataclass(frozen=True, slots=True)
class SessionShape:
    """The options' sessions: how many turns, the gaps, the follow-ups' lengths, the share of tool turns."""

    turns: Spread
    think: Spread
    turn_tokens: int
    tool_share: float = 0.0
    tool_tokens: int = 256
    tool_time: Spread = NO_TIME


def synthetic_plan(shape: SessionShape, rng: random.Random) -> SessionPlan:
    """A session of the options' shape, drawn with ``rng``."""
    turns = [Turn()]
    for _ in range(shape.turns.draw_whole(rng) - 1):
        if shape.tool_share and rng.random() < shape.tool_share:
            turns.append(Turn("tool", shape.tool_tokens, gap_s=shape.tool_time.draw(rng)))
        else:
            turns.append(Turn("user", shape.turn_tokens, gap_s=shape.think.draw(rng)))
    return SessionPlan(tuple(turns))


def load_session_file(path: str, time_scale: float = 1.0) -> list[SessionPlan]:
    """A session file's sessions (PromptError with one line naming the line that is wrong).

    One JSON object per line: ``{"session_id": "a1", "turns": [{"input_tokens": 900, "output_tokens": 40},
    {"kind": "tool", "input_tokens": 300, "output_tokens": 60, "gap_s": 1.5}, ...]}``; gaps are multiplied by
    ``time_scale``."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise PromptError(f"session file {path}: {exc.strerror or exc}") from None
    plans = [_plan(line, path, n, time_scale) for n, line in enumerate(lines, 1) if line.strip()]
    if not plans:
        raise PromptError(f"session file {path}: no sessions in it")
    return plans


def _plan(line: str, path: str, number: int, time_scale: float) -> SessionPlan:
    where = f"session file {path} line {number}"
    try:
        data = json.loads(line)
    except ValueError:
        raise PromptError(f"{where}: not JSON") from None
    conversation = (data.get("conversations") or data.get("conversation")) if isinstance(data, dict) else None
    if isinstance(conversation, list):
        return _conversation(conversation, where, str(data.get("id") or data.get("session_id") or ""))
    turns = data.get("turns") if isinstance(data, dict) else None
    if not isinstance(turns, list) or not turns:
        raise PromptError(f'{where}: needs "turns", a list of turns (or ShareGPT "conversations")')
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise PromptError(f"{where}: turn {i + 1} is not an object")
        kind = str(turn.get("kind", "user"))
        new, output, gap = turn.get("input_tokens"), turn.get("output_tokens"), turn.get("gap_s", 0)
        if kind not in KINDS or not isinstance(new, int) or not isinstance(output, int):
            new = output = None
        if new is None or output is None or not _whole(new, 1) or not _whole(output, 1) or not _number(gap):
            raise PromptError(
                f"{where}: turn {i + 1} needs kind user|tool, input_tokens and output_tokens (whole, at least 1) "
                "and gap_s (seconds, 0 or more)"
            )
        out.append(Turn(kind, new, output, 0.0 if i == 0 else float(gap) * time_scale))
    return SessionPlan(tuple(out), str(data.get("session_id") or ""))


def _conversation(conversation: list, where: str, name: str) -> SessionPlan:
    """A ShareGPT conversation: a turn per human message, sent as it is, with the reply's length in words as
    its max_tokens; the gaps are --think-time's."""
    said = [t for t in conversation if isinstance(t, dict) and isinstance(t.get("value"), str)]
    turns: list[Turn] = []
    for i, message in enumerate(said):
        if message.get("from") in ("human", "user") and message["value"].strip():
            reply = (
                said[i + 1]["value"] if i + 1 < len(said) and said[i + 1].get("from") in ("gpt", "assistant") else ""
            )
            answer = len(reply.split()) or None
            turns.append(Turn("user", None, answer, 0.0 if not turns else None, text=message["value"]))
    if not turns:
        raise PromptError(f"{where}: a conversation without a human message")
    return SessionPlan(tuple(turns), name)


def _whole(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


class TurnText:
    """Messages of an exact number of tokens: words the served model's tokenizer counts as one token each
    (found once), after ``LEAD``."""

    def __init__(self, counter: TokenCounter) -> None:
        overhead = counter.count(LEAD, False)
        self.words = single_token_words(counter, False, overhead, VOCABULARY)
        if len(self.words) < 16:
            raise PromptError(f"{counter.name} splits too many common words: cannot build exact-length turns")

    def text(self, rng: random.Random, tokens: int) -> str:
        return " ".join([LEAD, *(rng.choice(self.words) for _ in range(tokens - 1))])


def history_ideal(earlier_prompts: Sequence[int | None], block_size: int) -> int | None:
    """The tokens a prefix cache that kept the session holds of its next turn: the last known earlier
    prompt's whole blocks (None on a first turn, or when no earlier prompt's length is known)."""
    known = [p for p in earlier_prompts if p]
    if not known:
        return None
    return known[-1] // block_size * block_size
