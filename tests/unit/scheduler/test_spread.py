"""A quantity fixed or drawn per use: its forms, its draws, and one line for a bad one."""

from __future__ import annotations

import random

import numpy as np
import pytest

from scheduler.errors import ParameterError
from scheduler.spread import Spread, parse_spread, parse_turns


def test_the_three_forms_and_their_draws():
    rng = random.Random(1)
    assert parse_spread("2.5", "think_time") == Spread("fixed", 2.5, 2.5)
    assert parse_spread("2.5", "think_time").draw(rng) == 2.5
    exp = [parse_spread("exp:4", "think_time").draw(rng) for _ in range(4000)]
    # the mean of 4,000 exponentials of mean 4 is within 4 standard errors (4/sqrt(4000) each) of 4
    assert abs(np.mean(exp) - 4) < 4 * 4 / np.sqrt(4000)
    uniform = [parse_spread("uniform:1,3", "think_time").draw(rng) for _ in range(1000)]
    assert min(uniform) >= 1 and max(uniform) <= 3
    turns = {parse_turns("uniform:2,4").draw_whole(rng) for _ in range(200)}
    assert turns == {2, 3, 4}
    assert parse_turns("3").draw_whole(rng) == 3 and parse_turns("3").most == 3
    assert str(parse_spread("exp:4", "x")) == "exp:4" and str(parse_spread("uniform:1,3", "x")) == "uniform:1,3"


@pytest.mark.parametrize(
    ("text", "whole", "message"),
    [
        ("soon", False, "think_time: 'soon' is not a number"),
        ("gamma:1", False, "think_time takes S, exp:MEAN or uniform:LO,HI; got 'gamma:1'"),
        ("uniform:3", False, "think_time takes S, exp:MEAN or uniform:LO,HI; got 'uniform:3'"),
        ("uniform:3,1", False, "think_time needs 0 <= LO <= HI; got 'uniform:3,1'"),
        ("-1", False, "think_time needs 0 <= LO <= HI; got '-1'"),
        ("2.5", True, "think_time takes whole numbers of at least 1; got '2.5'"),
        ("0", True, "think_time takes whole numbers of at least 1; got '0'"),
    ],
)
def test_a_bad_spread_is_one_line_naming_its_parameter(text, whole, message):
    with pytest.raises(ParameterError) as err:
        parse_spread(text, "think_time", whole=whole)
    assert str(err.value) == message
