"""The default user: streaming chat (or completions) over the suite's own socket client."""

from __future__ import annotations

from locust import task

from users.base import LLMUser, send_next_prompt


class VLLMUser(LLMUser):
    """Streams one completion at a time over a keep-alive connection (``--turns K``: conversations)."""

    abstract = False

    @task
    def generate(self) -> None:
        send_next_prompt(self)
