"""The base of every LLM user: ``self.client.chat(...)`` / ``self.client.completion(...)``.

A user class chooses a transport (``make_transport``); everything else is shared:
the ``-n`` budget, the model, requests in flight, cancellation and recording, so a
task written against ``self.client`` gets the same exact rows as the built-in one.

    from users.api import LLMUser, task

    class MyUser(LLMUser):
        @task
        def ask(self):
            first = self.client.chat("Name a prime.", max_tokens=16)
            self.client.chat(f"Is {first.text} prime?", max_tokens=16)

The client is ready when the user is made (no ``on_start`` to call), and ``self.rng`` makes the
user's random choices, the same in every run with the same ``--seed``.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, ClassVar

import gevent
from locust import User, constant
from locust.exception import StopUser

from llmclient.measure import RequestRecord
from llmclient.stream import Messages
from llmclient.transports import Transport
from users.load.client import LLMClient, socket_transport
from users.runtime.handle import get_run
from users.services.run import LLMRun
from users.settings.hosts import primary

if TYPE_CHECKING:
    from locust.env import Environment

OPEN_LOOP_IDLE_S = 1.0


class LLMUser(User):
    """Base of the suite's users: ``self.client`` streams and records; subclasses add tasks.

    A closed loop with no wait by default: each user sends its next request as soon as
    the previous one ends, so ``-u`` is the concurrency.
    """

    abstract = True
    wait_time = constant(0)
    # runs only when named on the command line (``locust -f locustfile.py OpenAISDKUser``)
    only_when_named: ClassVar[bool] = False

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        # not "run": that is Locust's User.run
        run = self.llm_run = get_run(environment)
        # this process's users in the order made: with --seed and the process's stream, the user's randomness
        self.index = run.new_user()
        self.rng = random.Random(f"{run.context.settings.load.seed}-{run.context.stream_id}-{self.index}")
        host = self.host or ""
        self.client = LLMClient(
            run, host, self.make_transport(run, primary(host)), lambda one: self.make_transport(run, one)
        )

    def make_transport(self, run: LLMRun, host: str) -> Transport:
        """This user's transport to one host (of -H's)."""
        return socket_transport(run.context, host)

    def on_stop(self) -> None:
        self.client.close()


def send_next_prompt(user: LLMUser) -> None:
    """The built-in task: the run's next prompt, or with sessions (``--turns K``) a whole session."""
    run = user.llm_run
    # the test could not start (said in one line): the run is stopping
    if not run.prompts.ready:
        raise StopUser()
    settings = run.context.settings
    # the schedule sends the requests (users/load/open_loop.py, users/load/sweep.py): idle
    if settings.mode.scheduled:
        gevent.sleep(OPEN_LOOP_IDLE_S)
        return
    if not settings.in_sessions:
        user.client.send_prompt(run.prompts.next_prompt())
        return
    endpoint = run.context.endpoint

    def send(rec: RequestRecord, messages: Messages, max_tokens: int | None) -> RequestRecord:
        return user.client.request(endpoint, messages, max_tokens=max_tokens, collect_text=True, record=rec)

    sid, plan = run.sessions.next_plan(user.rng)
    run.sessions.run_session(plan, sid, send, user.rng)


__all__ = ["LLMClient", "LLMUser", "send_next_prompt"]
