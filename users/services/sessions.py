"""Sessions: a conversation's or an agent's turns, each re-sending the whole history, with the gaps between.

``SessionRunner.run_session`` plays one session's plan (``prompts.sessions``) through ``send`` (the closed loop's
user client, or the open loop's sender): the first turn is one of the run's prompts (or a session file's
first message); each later one waits its gap, counted from the end of the previous answer (a person
reads, then types; a tool runs), then adds the answer and a new user message or a tool's result. Every
request's record says its session and turn; a later turn's says the history's ideal cached tokens.

A failed turn does not end the session (its answer is empty in the history): a session always sends its
turns, so ``--sessions`` ends exactly; the end of the test or a spent ``-n`` cut it off.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from itertools import count

import gevent

from llmclient.measure import RequestRecord
from llmclient.stream import Messages
from prompts.sessions import SessionPlan, Turn, TurnText, history_ideal, load_session_file, synthetic_plan
from users.settings.context import RunContext
from users.supply.prompt_service import PromptService

# sends one turn: its record (session fields filled in), the history, the answer's max_tokens
Send = Callable[[RequestRecord, Messages, "int | None"], RequestRecord]


def sleep_until(deadline: float) -> None:
    """Sleep until ``time.perf_counter()`` reaches ``deadline`` (never less: a timer may fire early)."""
    while (left := deadline - time.perf_counter()) > 0:
        gevent.sleep(left)


class SessionRunner:
    """This process's sessions: their plans, their ids, and playing them."""

    def __init__(self, context: RunContext, prompts: PromptService) -> None:
        self.context = context
        self.prompts = prompts
        self._numbers = count(1)
        # a session file's plans ([]: drawn from the options), and exact-length messages
        self.plans: list[SessionPlan] = []
        self._text: TurnText | None = None

    def prepare(self, host: str) -> None:
        """At a test's start: a session file's plans, and the words of exact-length turns (raises PromptError)."""
        s = self.context.settings
        if not s.in_sessions:
            return
        self._text = TurnText(self.prompts.token_counter(host))
        file = s.prompts.session_file
        self.plans = load_session_file(file, s.prompts.session_time_scale) if file else []

    @property
    def most_turns(self) -> int:
        """The most turns a session of this run can have (an unbounded draw counted as 100)."""
        s = self.context.settings
        plans = self.plans or (load_session_file(s.prompts.session_file) if s.prompts.session_file else [])
        if plans:
            return max(len(plan.turns) for plan in plans)
        most = s.prompts.turns.most
        return 100 if math.isinf(most) else int(most)

    def turn_text(self, rng: random.Random, tokens: int) -> str:
        """A new message of ``tokens`` tokens."""
        assert self._text is not None, "sessions are prepared at test start"
        return self._text.text(rng, tokens)

    def next_plan(self, rng: random.Random) -> tuple[str, SessionPlan]:
        """The next session's id (unique in the run: this process's stream, then a number) and plan."""
        number = next(self._numbers)
        plans = self.plans
        shape = self.context.settings.prompts.session_shape
        plan = plans[(number - 1) % len(plans)] if plans else synthetic_plan(shape, rng)
        sid = f"s{self.context.stream_id}-{number}"
        return (f"{sid}-{plan.name}" if plan.name else sid), plan

    def run_session(
        self,
        plan: SessionPlan,
        sid: str,
        send: Send,
        rng: random.Random,
        first: RequestRecord | None = None,
        think: float | None = None,
    ) -> None:
        """Play ``plan`` through ``send``; ``first``: the first turn's record as the caller made it (an
        open loop's due time, a level's label), whose level and stage the later turns carry too; ``think``:
        a think-time level's gap before each user's turn."""
        template = first if first is not None else RequestRecord()
        block = self.context.settings.prompts.kv_block_size
        history: Messages = []
        prompts: list[int | None] = []
        last: RequestRecord | None = None
        ended = 0.0
        for number, turn in enumerate(plan.turns, 1):
            if number == 1:
                rec = template
                history, max_tokens = self._first(turn, rng, rec)
            else:
                sleep_until(ended + self._gap(turn, think, rng))
                assert last is not None
                history += self._follow_up(turn, number, last, rng)
                max_tokens = turn.output_tokens
                rec = RequestRecord(level=template.level, repeat=template.repeat, stage=template.stage)
            rec.session_id, rec.turn, rec.last_turn = sid, number, number == len(plan.turns)
            rec.ideal_cached_tokens = history_ideal(prompts, block)
            last = send(rec, list(history), max_tokens)
            ended = time.perf_counter()
            prompts.append(last.prompt_tokens)

    def _gap(self, turn: Turn, think: float | None, rng: random.Random) -> float:
        """The wait before ``turn``: a think-time level's (``think``) before a user's turn, else the plan's, else
        one drawn from --think-time."""
        if turn.kind == "user" and think is not None:
            return think
        return turn.gap_s if turn.gap_s is not None else self.context.settings.prompts.think_time.draw(rng)

    def _first(self, turn: Turn, rng: random.Random, rec: RequestRecord) -> tuple[Messages, int | None]:
        """The first turn's messages and max_tokens: one of the run's prompts (where its own part begins goes on
        ``rec``: a hit past it is a cache warm from an earlier run), or a session file's first message."""
        prompts = self.prompts
        if turn.new_tokens is None and not turn.text:
            prompt = prompts.next_prompt()
            rec.unique_from = prompt.unique_from
            return [{"role": "user", "content": prompt.content}], turn.output_tokens or prompt.max_tokens
        text = turn.text or self.turn_text(rng, turn.new_tokens or 1)
        return [{"role": "user", "content": text}], turn.output_tokens

    def _follow_up(self, turn: Turn, number: int, last: RequestRecord, rng: random.Random) -> Messages:
        """The previous answer and this turn's new message."""
        text = turn.text or self.turn_text(rng, turn.new_tokens or 1)
        if turn.kind == "tool":
            call = f"call_{number - 1}"
            tool_call = {"id": call, "type": "function", "function": {"name": "tool", "arguments": "{}"}}
            return [
                {"role": "assistant", "content": last.text, "tool_calls": [tool_call]},
                {"role": "tool", "tool_call_id": call, "content": text},
            ]
        return [{"role": "assistant", "content": last.text}, {"role": "user", "content": text}]


__all__ = ["Send", "SessionRunner", "sleep_until"]
