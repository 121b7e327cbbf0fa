"""The base of every LLM user: ``self.client.chat(...)`` / ``self.client.completion(...)``.

A user class chooses a transport (``make_transport``); everything else is shared:
the ``-n`` budget, the model, requests in flight, cancellation and recording, so a
task written against ``self.client`` gets the same exact rows as the built-in one.

    from locust import task
    from users.base import LLMUser

    class MyUser(LLMUser):
        @task
        def ask(self):
            first = self.client.chat([{"role": "user", "content": "Name a prime."}], max_tokens=16)
            self.client.chat([{"role": "user", "content": f"Is {first.text} prime?"}], max_tokens=16)
"""

from __future__ import annotations

import random

import gevent
from locust import User, constant
from locust.exception import StopUser

from llmclient.measure import RequestRecord
from llmclient.stream import Messages
from llmclient.transports import Transport
from prompts.text import join, words
from users.load.client import LLMClient, socket_transport
from users.runtime.roles import get_run
from users.services.run import LLMRun
from users.settings.hosts import primary

OPEN_LOOP_IDLE_S = 1.0


class LLMUser(User):
    """Base of the suite's users: ``self.client`` streams and records; subclasses add tasks.

    A closed loop with no wait by default: each user sends its next request as soon as
    the previous one ends, so ``-u`` is the concurrency.
    """

    abstract = True
    wait_time = constant(0)

    def make_transport(self, run: LLMRun, host: str) -> Transport:
        """This user's transport to one host (of -H's)."""
        return socket_transport(run.context, host)

    def on_start(self) -> None:
        # not "run": that is Locust's User.run
        run = self.llm_run = get_run(self.environment)
        host = self.host or ""
        self.client = LLMClient(
            run, host, self.make_transport(run, primary(host)), lambda one: self.make_transport(run, one)
        )

    def on_stop(self) -> None:
        self.client.close()


def send_next_prompt(user: LLMUser) -> None:
    """The built-in task: the run's next prompt, or with ``--turns K`` the next turn of a conversation."""
    run = user.llm_run
    # the test could not start (said in one line): the run is stopping
    if not run.prompts.ready:
        raise StopUser()
    settings = run.context.settings
    endpoint = run.context.endpoint
    # the schedule sends the requests (users/load/open_loop.py, users/load/sweep.py): idle
    if settings.scheduled:
        gevent.sleep(OPEN_LOOP_IDLE_S)
        return
    if settings.turns <= 1:
        user.client.send_prompt(run.prompts.next_prompt())
        return
    talk: Conversation = user.__dict__.setdefault("conversation", Conversation(settings.seed, id(user)))
    if talk.continues(settings.turns):
        messages = talk.follow_up(settings.turn_tokens)
    else:
        prompt = run.prompts.next_prompt()
        talk.max_tokens = prompt.max_tokens
        messages = talk.start(prompt.content)
    talk.last = user.client.request(endpoint, messages, talk.max_tokens, {}, True)


class Conversation:
    """A user's multi-turn conversation: its history, and how many turns it has had."""

    def __init__(self, seed: int, user_id: int) -> None:
        self.rng = random.Random(f"{seed}-{user_id}")
        self.history: Messages = []
        self.turn = 0
        # the first prompt's own output length, if it has one
        self.max_tokens: int | None = None
        self.last: RequestRecord | None = None

    def continues(self, turns: int) -> bool:
        last = self.last
        return 0 < self.turn < turns and last is not None and last.success

    def start(self, first_message: str) -> Messages:
        self.history = [{"role": "user", "content": first_message}]
        self.turn = 1
        return list(self.history)

    def follow_up(self, turn_tokens: int) -> Messages:
        assert self.last is not None
        question = join(words(self.rng, turn_tokens))
        self.history += [{"role": "assistant", "content": self.last.text}, {"role": "user", "content": question}]
        self.turn += 1
        return list(self.history)


__all__ = ["LLMClient", "LLMUser", "send_next_prompt"]
