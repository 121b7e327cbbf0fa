"""Search, then answer: each task embeds the question (``/v1/embeddings``), then asks for the answer through
the Responses API (``/v1/responses``) with the passage's figure attached (``images=``: URLs, data: URLs or
image files), as a retrieval service in front of a vision model does.

    locust -f examples/search.py --headless -u 8 -r 8 -n 60 -H http://127.0.0.1:8000 --csv results/search

Both calls are rows of ``results/search_requests.csv`` (``endpoint`` says which): the embedding's latency is
its ``e2e_s`` (no token streams back), the answer's TTFT and ITL as chat's. ``-n`` counts both.
"""

# first: Locust, so that gevent patches the standard library early
from users.api import LLMUser, task

# isort: split
from prompts.images import image_url

QUESTIONS = [
    "Which regions does the premium plan cover?",
    "How do I rotate an API key without downtime?",
    "What is the refund window for annual subscriptions?",
    "Can two teams share one billing account?",
]


# the passage's figure, one image for every answer
FIGURE = image_url((42,), (64, 48), "jpeg")


class SearchUser(LLMUser):
    @task
    def search_then_answer(self) -> None:
        question = self.rng.choice(QUESTIONS)
        found = self.client.embed(question)
        if not found.success:
            return
        self.client.respond(
            f"Using the closest passage and its figure, answer briefly: {question}", max_tokens=32, images=[FIGURE]
        )
