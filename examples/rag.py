"""Retrieval-augmented chat: a long system prompt shared by every request, then retrieved passages.

    locust -f examples/rag.py --headless -u 32 -r 8 -n 200 -H http://127.0.0.1:8000 --csv results/rag

The system prompt is the same for every request, so vLLM's prefix cache serves it after the
first; the passages (three of a small corpus) and the question differ. Compare
``cached_tokens`` in ``results/rag_requests.csv`` with and without ``--enable-prefix-caching``.
"""

from users.api import LLMUser, task

SYSTEM = (
    "You are the support assistant of a cloud storage company. Answer only from the passages given, "
    "cite the passage number for every claim, and say so when the passages do not answer the question. "
    # a long instruction block, identical in every request: the shared prefix
) * 12
CORPUS = [
    f"Passage about topic {i}: objects in tier {i % 3} are replicated {1 + i % 4} times across "
    f"{2 + i % 3} zones, and deleted objects are kept for {7 * (1 + i % 5)} days before purging."
    for i in range(40)
]
QUESTIONS = ["How long are deleted objects kept?", "How many replicas does tier 2 keep?", "Which zones are used?"]


class RAGUser(LLMUser):
    @task
    def ask(self) -> None:
        passages = "\n".join(f"[{n}] {p}" for n, p in enumerate(self.rng.sample(CORPUS, 3), 1))
        question = self.rng.choice(QUESTIONS)
        self.client.chat(
            [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Passages:\n{passages}\n\nQuestion: {question}"},
            ],
            max_tokens=64,
        )
