"""The suite for a locustfile, in one import:

    from users.api import LLMUser, task

    class MyUser(LLMUser):
        @task
        def ask(self):
            self.client.chat("Name a prime.", max_tokens=16)

Importing it imports Locust first, so that gevent patches the standard library before anything else
does, and installs the suite as a Locust plugin: its options on Locust's parser, and its run in each
process (``users/plugin.py``). Locust puts the working directory on the import path: run ``locust``
from the project's folder, ``-f`` naming any locustfile.
"""

# first: gevent patches the standard library
from locust import between, constant, constant_pacing, events, tag, task

from users.base import LLMUser
from users.openai_user import OpenAISDKUser
from users.plugin import install
from users.shape import StagesShape
from users.vllm_user import VLLMUser

install()

__all__ = [
    "LLMUser",
    "OpenAISDKUser",
    "StagesShape",
    "VLLMUser",
    "between",
    "constant",
    "constant_pacing",
    "events",
    "tag",
    "task",
]
