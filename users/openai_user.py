"""A second transport: the official ``openai`` SDK, for testing through the client an application uses.

Same measurement and recording as ``VLLMUser`` (the transports feed one accumulator);
select it with ``locust -f locustfile.py OpenAISDKUser``. The SDK parses every chunk into
pydantic objects, which costs far more CPU per token than ``VLLMUser``: see the README's
benchmark table before using it at high concurrency.
"""

from __future__ import annotations

import logging

from locust import task

from llmclient.transports import OpenAISDKTransport, Transport
from users.base import LLMUser, send_next_prompt
from users.services.run import LLMRun

# one INFO line per request otherwise
for _name in ("httpx", "httpx2"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class OpenAISDKUser(LLMUser):
    """Streams through ``openai.OpenAI`` (httpx underneath, made cooperative by gevent)."""

    abstract = False
    only_when_named = True

    @task
    def generate(self) -> None:
        send_next_prompt(self)

    def make_transport(self, run: LLMRun, host: str) -> Transport:
        s = run.context.settings
        return OpenAISDKTransport(
            host,
            s.server.api_key,
            s.server.request_timeout or s.server.stream_timeout,
            session_header=s.load.session_header,
        )
