"""--model NAME[:WEIGHT],…: parsed in one line or refused in one, and each model's share exact to within one
request whatever the count."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from users.settings.model_mix import ModelMix, ModelPicker


def test_a_mix_is_parsed_in_order_with_weight_1_where_none_is_given():
    mix = ModelMix.parse(" base:0.5, sql-lora:0.3 ,org/model-v2:latest:0.2,plain")
    assert mix is not None and mix.names == ("base", "sql-lora", "org/model-v2:latest", "plain")
    assert mix.models[3] == ("plain", 1.0)
    assert ModelMix.parse("") is None
    assert ModelMix.parse("only").models == (("only", 1.0),)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a:0.5,:0.5", "--model takes NAME[:WEIGHT],… (e.g. base:0.5,sql-lora:0.5); got ':0.5'"),
        ("a:x", "--model a: the weight must be a number, got 'x'"),
        ("a:0", "--model a: the weight must be positive, got 0"),
        ("a:-1", "--model a: the weight must be positive, got -1"),
        ("a,a", "--model names a twice"),
    ],
)
def test_a_bad_mix_is_one_line(text, message):
    with pytest.raises(ValueError) as err:
        ModelMix.parse(text)
    assert str(err.value) == message


@given(
    weights=st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=5),
    n=st.integers(min_value=1, max_value=400),
)
def test_each_models_share_is_exact_to_within_one_request(weights, n):
    mix = ModelMix(tuple((f"m{i}", float(w)) for i, w in enumerate(weights)))
    picker = ModelPicker(mix)
    counts = Counter(picker.pick() for _ in range(n))
    for name, share in mix.shares.items():
        assert abs(counts[name] - share * n) < 1 + 1e-9, (name, counts[name], share * n)
