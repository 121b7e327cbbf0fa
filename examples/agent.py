"""An agent: each task is a chain of dependent calls with tool definitions in the request.

    locust -f examples/agent.py --headless -u 8 -r 8 -n 60 -H http://127.0.0.1:8000 --csv results/agent

The first call plans (with the tools it may use); the second carries the first answer in its
messages, as an agent loop does, so its prompt grows by that answer. Each call is one row of
``results/agent_requests.csv``; a failed plan ends the chain.
"""

from users.api import LLMUser, task

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search_orders",
            "description": "Find a customer's orders by email address",
            "parameters": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]},
        },
    }
]
GOAL = "A customer at ana@example.com asks where her last order is. Plan the steps, then answer."


class AgentUser(LLMUser):
    @task
    def solve(self) -> None:
        messages: list[dict[str, object]] = [{"role": "user", "content": GOAL}]
        plan = self.client.chat(messages, max_tokens=48, tools=TOOLS, tool_choice="auto")
        if not plan.success:
            return
        messages += [
            {"role": "assistant", "content": plan.text},
            {"role": "user", "content": "The tool found order 1042, shipped yesterday. Write the reply."},
        ]
        self.client.chat(messages, max_tokens=48, tools=TOOLS)
