"""A session's turns played through a scripted send: the history re-sent, a failed turn not ending the session,
the ideal cached tokens, and a gap never cut short by a timer that fires early."""

from __future__ import annotations

import random
import time
from types import SimpleNamespace

import gevent

from llmclient.measure import RequestRecord
from prompts.sessions import SessionPlan, Turn
from prompts.source import Prompt
from scheduler.spread import parse_spread
from users.services import sessions
from users.services.sessions import SessionRunner, sleep_until


class Words:
    name = "words"

    def count(self, content: str, chat: bool) -> int:
        return len(content.split())


def runner() -> SessionRunner:
    settings = SimpleNamespace(
        in_sessions=True, prompts=SimpleNamespace(kv_block_size=16, think_time=parse_spread("0", "t"), session_file="")
    )
    prompts = SimpleNamespace(
        next_prompt=lambda: Prompt("first question", max_tokens=7), token_counter=lambda _h: Words()
    )
    out = SessionRunner(SimpleNamespace(settings=settings, stream_id="0"), prompts)  # type: ignore[arg-type]
    out.prepare("host")
    return out


def test_a_failed_turn_does_not_end_its_session_and_each_turn_resends_the_history():
    sent: list[tuple[RequestRecord, list]] = []

    def send(rec: RequestRecord, messages: list, max_tokens: int | None) -> RequestRecord:
        sent.append((rec, messages))
        # the second turn fails: no answer, no usage
        if rec.turn == 2:
            rec.success, rec.error = False, "stream reset"
            return rec
        rec.success, rec.text, rec.prompt_tokens = True, f"answer {rec.turn}", 40 * rec.turn
        return rec

    plan = SessionPlan((Turn(), Turn("user", 5), Turn("tool", 3), Turn("user", 4, 9)))
    runner().run_session(plan, "s0-1", send, random.Random(1))
    assert [r.turn for r, _ in sent] == [1, 2, 3, 4] and [r.last_turn for r, _ in sent] == [False] * 3 + [True]
    assert {r.session_id for r, _ in sent} == {"s0-1"}
    history = sent[-1][1]
    assert history[0] == {"role": "user", "content": "first question"}
    # the failed turn's answer is empty in the history; the tool's result answers the answer's tool call
    assert history[3]["content"] == "" and history[4]["role"] == "tool"
    assert history[4]["tool_call_id"] == history[3]["tool_calls"][0]["id"]
    assert len(history) == 1 + 2 * 3
    # the ideal: the last known earlier prompt's whole blocks (turn 2 failed: turn 1's for turn 3)
    assert [r.ideal_cached_tokens for r, _ in sent] == [None, 32, 32, 112]


def test_a_gap_is_never_cut_short_by_a_timer_that_fires_early(monkeypatch):
    slept: list[float] = []

    real = gevent.sleep

    def early(seconds: float) -> None:
        slept.append(seconds)
        # wakes after half of what was asked
        real(seconds / 2)

    monkeypatch.setattr(sessions.gevent, "sleep", early)
    deadline = time.perf_counter() + 0.05
    sleep_until(deadline)
    assert time.perf_counter() >= deadline and len(slept) > 1
