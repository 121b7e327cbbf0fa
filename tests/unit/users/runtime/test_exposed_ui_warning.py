from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from users.runtime.lifecycle import warn_if_exposed
from users.settings.settings import Settings


def settings(key, **locust):
    return Settings.from_options(SimpleNamespace(api_key=key, num_users=1, headless=False, **locust))


@pytest.mark.parametrize(
    ("web_host", "key", "login", "warned"),
    [
        ("", "sk-x", False, True),
        ("0.0.0.0", "sk-x", False, True),
        ("127.0.0.1", "sk-x", False, False),
        ("", "sk-x", True, False),
        ("", None, False, False),
    ],
)
def test_warns_when_the_ui_is_open_beyond_localhost_with_a_key_and_no_login(
    caplog, monkeypatch, web_host, key, login, warned
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with caplog.at_level(logging.WARNING):
        warn_if_exposed(settings(key, worker=False, web_host=web_host, web_login=login))
    assert ("use --web-login" in caplog.text) == warned
    assert "sk-x" not in caplog.text
