"""A prompt that cannot be built mid-run ends that test once; the next test (the web UI's) starts afresh."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from locust.exception import StopUser

from llmclient.errors import ConfigError
from prompts.source import Prompt
from users.settings.context import RunContext
from users.settings.settings import Settings
from users.supply.prompt_service import PromptService


class Source:
    def __init__(self) -> None:
        self.fail = True

    def next_prompt(self) -> Prompt:
        if self.fail:
            raise ConfigError("cannot count tokens with 127.0.0.1:9/tokenize: connection refused")
        return Prompt("hello", 3)


def test_a_failed_build_is_said_once_stops_each_asker_and_a_new_test_starts_afresh():
    settings = Settings.from_options(SimpleNamespace())
    said: list[str] = []
    service = PromptService(RunContext(settings), said.append)
    source = service.source = Source()
    for _ in range(3):
        with pytest.raises(StopUser):
            service.next_prompt()
    assert said == ["prompts cannot be built: cannot count tokens with 127.0.0.1:9/tokenize: connection refused"]
    # the server answers again; the web UI starts a new test on the same host
    source.fail = False
    service._prepared_for = service.prepared_key("http://127.0.0.1:9")
    # prepared already: the pool is kept, the failure is not
    service.prepare("http://127.0.0.1:9")
    assert service.next_prompt().content == "hello"
