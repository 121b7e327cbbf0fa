"""vLLM load test: streaming completions with exact per-request metrics.

    locust -f locustfile.py --headless -u 128 -r 16 -n 500 -H http://127.0.0.1:8000 --csv results/run

Thin on purpose: options, listeners and the user classes live in ``users/``.
"""

import os
import sys

from locust import events  # first: gevent patches the standard library before anything else

from users import options, run
from users.openai_user import OpenAISDKUser, requested
from users.vllm_user import VLLMUser

# VLLMUser by default; the openai-SDK user only when named: locust -f locustfile.py OpenAISDKUser
OpenAISDKUser.abstract = not requested(sys.argv, dict(os.environ))
__all__ = ["OpenAISDKUser", "VLLMUser"]


@events.init_command_line_parser.add_listener
def _add_options(parser, **kw):
    options.add_options(parser)


@events.init.add_listener
def _on_init(environment, **kw):
    run.register(environment)
