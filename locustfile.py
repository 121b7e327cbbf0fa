"""vLLM load test: streaming completions with exact per-request metrics.

    locust -f locustfile.py --headless -u 128 -r 16 -n 500 -H http://127.0.0.1:8000 --csv results/run

Thin on purpose: the client is ``llmclient/``, the Locust layer ``users/``. ``VLLMUser`` runs by
default; ``OpenAISDKUser`` only when named (``locust -f locustfile.py OpenAISDKUser``); ``StagesShape``
only with ``--stages`` in user counts. Write your own users on ``LLMUser`` (see ``examples/``).
"""

from users.api import OpenAISDKUser, StagesShape, VLLMUser

__all__ = ["OpenAISDKUser", "StagesShape", "VLLMUser"]
