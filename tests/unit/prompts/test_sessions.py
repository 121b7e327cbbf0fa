"""Sessions' plans: from the options and from a session file (exact, scaled, one line when wrong), their
exact-length messages, and the history's ideal."""

from __future__ import annotations

import json
import random

import pytest

from prompts.sessions import SessionShape, Turn, TurnText, history_ideal, load_session_file, synthetic_plan
from prompts.source import PromptError
from scheduler.spread import parse_spread


class WordCounter:
    """Counts words, as a tokenizer whose every word is one token."""

    name = "words"

    def count(self, content: str, chat: bool) -> int:
        return len(content.split())


def test_a_synthetic_session_has_the_options_shape():
    shape = SessionShape(parse_spread("4", "turns"), parse_spread("2", "think"), 64, 0.5, 300, parse_spread("0.1", "t"))
    plan = synthetic_plan(shape, random.Random(3))
    assert len(plan.turns) == 4 and plan.turns[0] == Turn()
    for turn in plan.turns[1:]:
        assert (turn.kind, turn.new_tokens, turn.gap_s) in (("user", 64, 2.0), ("tool", 300, 0.1))
    kinds = {t.kind for _ in range(20) for t in synthetic_plan(shape, random.Random(_)).turns[1:]}
    assert kinds == {"user", "tool"}


def test_a_session_file_is_read_exactly_and_its_gaps_scaled(tmp_path):
    path = tmp_path / "s.jsonl"
    lines = [
        {"session_id": "a", "turns": [{"input_tokens": 900, "output_tokens": 40, "gap_s": 5}]},
        {
            "turns": [
                {"input_tokens": 10, "output_tokens": 4},
                {"kind": "tool", "input_tokens": 300, "output_tokens": 60, "gap_s": 1.5},
            ]
        },
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    first, second = load_session_file(str(path), time_scale=0.5)
    # the first turn's gap is none: it starts the session
    assert first.name == "a" and first.turns == (Turn("user", 900, 40, 0.0),)
    assert second.name == "" and second.turns[1] == Turn("tool", 300, 60, 0.75)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{", "line 1: not JSON"),
        ('{"turns": []}', 'line 1: needs "turns", a list of turns'),
        ('{"turns": [{"input_tokens": 0, "output_tokens": 4}]}', "line 1: turn 1 needs kind user|tool"),
        ('{"turns": [{"kind": "bot", "input_tokens": 3, "output_tokens": 4}]}', "line 1: turn 1 needs kind user|tool"),
        ('{"turns": [{"input_tokens": 3, "output_tokens": 4, "gap_s": -1}]}', "line 1: turn 1 needs kind user|tool"),
        ('{"turns": [1]}', "line 1: turn 1 is not an object"),
    ],
)
def test_a_bad_session_file_gets_one_line_naming_where(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(PromptError) as err:
        load_session_file(str(path))
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_turns_message_has_exactly_its_tokens():
    text = TurnText(WordCounter())
    for n in (1, 2, 57):
        assert WordCounter().count(text.text(random.Random(n), n), False) == n


def test_the_historys_ideal_is_the_last_known_earlier_prompts_whole_blocks():
    assert history_ideal([], 16) is None
    assert history_ideal([None], 16) is None
    assert history_ideal([200], 16) == 192
    # the previous turn failed (no usage): the one before it is what the server last read whole
    assert history_ideal([200, 276, None], 16) == 272
    assert history_ideal([200, 276], 32) == 256


def test_a_sharegpt_conversation_is_a_session_of_its_human_messages(tmp_path):
    talk = [
        {"from": "system", "value": "be brief"},
        {"from": "human", "value": "hello there"},
        {"from": "gpt", "value": "hi, how can I help"},
        {"from": "human", "value": "tell me more"},
    ]
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": "x9", "conversations": talk}) + "\n")
    (plan,) = load_session_file(str(path))
    assert plan.name == "x9"
    # the first starts the session; the next waits --think-time (None); the last has no reply to size it
    assert plan.turns == (Turn("user", None, 5, 0.0, "hello there"), Turn("user", None, None, None, "tell me more"))
    path.write_text(json.dumps({"conversations": [{"from": "gpt", "value": "alone"}]}) + "\n")
    with pytest.raises(PromptError) as err:
        load_session_file(str(path))
    assert "a conversation without a human message" in str(err.value)
