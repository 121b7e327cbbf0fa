"""A mixed workload: three short chats for every long summarisation, by Locust's task weights.

    locust -f examples/mixed.py --headless -u 64 -r 16 -n 400 -H http://127.0.0.1:8000 --csv results/mixed

The two kinds differ in prompt and output length, so their rows (``prompt_tokens``,
``output_tokens``) tell them apart in ``results/mixed_requests.csv``.
"""

from users.api import LLMUser, task

DOCUMENT = " ".join(
    f"Section {i}: the quarterly report notes revenue grew in region {i % 7} while costs fell by {i % 9} percent."
    for i in range(60)
)


class MixedUser(LLMUser):
    @task(3)
    def short_chat(self) -> None:
        self.client.chat(f"Give me one tip about {self.rng.choice(['sleep', 'focus', 'tea'])}.", max_tokens=16)

    @task(1)
    def summarise(self) -> None:
        self.client.chat(f"Summarise this report in five bullet points:\n\n{DOCUMENT}", max_tokens=128)
