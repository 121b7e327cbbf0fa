"""vLLM load test: streaming completions with exact per-request metrics.

    locust -f locustfile.py --headless -u 128 -r 16 -n 500 -H http://127.0.0.1:8000 --csv results/run

Thin on purpose: the client is ``llmclient/``, the Locust layer ``users/``.
Write your own users on ``users.base.LLMUser`` (see ``examples/``).
"""

import os
import sys

from locust import events  # noqa: F401  first: gevent patches the standard library before anything else

from users.openai_user import OpenAISDKUser
from users.plugin import install
from users.settings.options import user_class_named
from users.shape import StagesShape, wants_user_stages
from users.vllm_user import VLLMUser

install()

# VLLMUser by default; the openai-SDK user only when named: locust -f locustfile.py OpenAISDKUser
OpenAISDKUser.abstract = not user_class_named("OpenAISDKUser", sys.argv, os.environ)
# Locust's LoadTestShape runs --stages given in user counts (a closed loop in steps)
StagesShape.abstract = not wants_user_stages(sys.argv, os.environ)
__all__ = ["OpenAISDKUser", "StagesShape", "VLLMUser"]
