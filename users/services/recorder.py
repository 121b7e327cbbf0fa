"""Each finished request through Locust's ``request`` event: the one way a sample is recorded.

One ``POST`` (or ``CANCELLED``) event per request, carrying the record for the
per-request log, plus ``TTFT`` and ``TPOT`` rows so Locust's tables show them.
Finished requests are recorded when the event loop is idle (``users/services/backlog.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from llmclient.measure import RequestRecord
from llmclient.stream import Endpoint
from users.services.backlog import RecordBacklog
from users.settings.context import RunContext

# Locust's request event's fire (the runtime hands it over)
Fire = Callable[..., None]

RECORD_KEY = "llm_record"
ENDPOINT_KEY = "llm_endpoint"


class Recorder:
    def __init__(self, context: RunContext, fire: Fire, on_fatal: Callable[[str], None]) -> None:
        self.context = context
        self.fire = fire
        # the run cannot go on: said once, the run ends
        self.on_fatal = on_fatal
        # the first answered request has been judged
        self.answered = False
        # between two rows, the open loop's sends that fell due meanwhile go out (llmclient/pacer.py)
        self.backlog: RecordBacklog[tuple[RequestRecord, Endpoint, float]] = RecordBacklog(
            self._record_and_count, between=context.pacer.poll
        )

    def record_soon(self, rec: RequestRecord, endpoint: Endpoint, elapsed: float) -> None:
        """Record a finished request, and count it against the budget, when the process is idle;
        ``drain`` records the rest when the test stops."""
        self.backlog.add((rec, endpoint, elapsed))

    def drain(self, **_kw: object) -> None:
        self.backlog.drain()

    def _record_and_count(self, item: tuple[RequestRecord, Endpoint, float]) -> None:
        self.record(*item)
        self.context.units.finish(item[0])

    def record(self, rec: RequestRecord, endpoint: Endpoint, elapsed: float) -> None:
        """Fire the request's events now. ``elapsed`` stands in for E2E when no token came."""
        fire = self.fire
        name = endpoint.path
        e2e = rec.e2e_s if rec.e2e_s is not None else elapsed
        if not self.answered and rec.status:
            # said once: a 404 first ends the run, any other status shows the route
            self.answered = True
            if rec.status == 404:
                self.on_fatal(missing_endpoint(rec.host, endpoint, rec.error))
        # A request cut off by the end of the test is neither a success nor a server failure:
        # it gets its own row type, so Locust counts it without failing the run.
        fire(
            request_type="CANCELLED" if rec.cancelled else "POST",
            name=name,
            response_time=e2e * 1000.0,
            response_length=rec.output_tokens or 0,
            exception=None if rec.success or rec.cancelled else rec.error,
            context={RECORD_KEY: rec, ENDPOINT_KEY: endpoint.name},
        )
        if rec.cancelled:
            return
        if rec.ttft_s is not None:
            fire(
                request_type="TTFT",
                name=name,
                response_time=rec.ttft_s * 1000.0,
                response_length=0,
                exception=None,
                context={},
            )
        tpot = rec.tpot_s
        if tpot is not None and rec.success:
            fire(
                request_type="TPOT",
                name=name,
                response_time=tpot * 1000.0,
                response_length=0,
                exception=None,
                context={},
            )


def missing_endpoint(host: str, endpoint: Endpoint, error: str) -> str:
    """The line that ends a run whose first answered request got 404: the server has no such route (the
    model was checked before the run: it serves it)."""
    hint = " (vLLM serves it for a pooling model: vllm serve MODEL --runner pooling)" if not endpoint.streams else ""
    return (
        f"server {host or 'the server'} has no {endpoint.path}: its first answer was {error or 'HTTP 404'}; it "
        f"cannot serve --endpoint {endpoint.name}{hint}"
    )
