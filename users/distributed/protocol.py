"""What the master and its workers say to each other: every message name and payload, in one place.

Messages go through Locust's own channel (``runner.send_message``; ``register_message`` on the
other side); the worker's periodic report (Locust's ``report_to_master`` / ``worker_report``)
carries a few keys of ours. The master's side is ``master.py``, the worker's ``worker.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.rpc.protocol import Message as LocustMessage


@dataclass(frozen=True)
class Message:
    name: str
    # "master" or "worker"
    sender: str
    # what its data holds
    payload: str


# worker -> master
GRANT_REQUEST = "llm_grant_request"
ROWS = "llm_rows"
READY = "llm_open_loop_ready"
LEVEL_DONE = "llm_level_done"
FATAL = "llm_fatal"
# master -> worker
GRANT = "llm_grant"
ARRIVALS = "llm_arrivals"
ARRIVALS_END = "llm_arrivals_end"
CLOSED_LEVEL = "llm_closed_level"
CANCEL_LEVEL = "llm_cancel_level"
ABORT = "llm_abort"

MESSAGES: tuple[Message, ...] = (
    Message(GRANT_REQUEST, "worker", '{"want": n}: requests of the global -n its users wait for'),
    Message(GRANT, "master", '{"count": n}: requests granted (0: none left for now)'),
    Message(
        ROWS,
        "worker",
        '{"rows": [[field, ...], ...]}: finished requests, as Row.fields made them (llmclient/schema.py)',
    ),
    Message(READY, "worker", "none: its prompts are built, it can take an open loop's arrivals"),
    Message(
        ARRIVALS,
        "master",
        '{"arrivals": [[due unix s, stage, trace row or null], ...], "cap": its share of '
        '--max-concurrency, "level": a sweep level or "", "prompts": a prompt level\'s'
        ' prompt set (scheduler.levels.prompt_set) or null, "repeat": --repeat\'s repetition or null, "think": a'
        " think-time level's gap or null}",
    ),
    Message(ARRIVALS_END, "master", "none: the schedule has ended"),
    Message(
        CLOSED_LEVEL,
        "master",
        '{"level", "prompts", "repeat", "think", "concurrency", "until" (unix s), "limit"}: its share of a '
        "closed-loop level",
    ),
    Message(CANCEL_LEVEL, "master", '{"level"}: cut the level off'),
    Message(ABORT, "master", '{"message"}: the run ends on an error: the worker stops and exits non-zero'),
    Message(LEVEL_DONE, "worker", '{"level", "sent"}: its share of a concurrency level has ended'),
    Message(FATAL, "worker", '{"message"}: the run cannot go on (its prompts cannot be built); the master ends it'),
)

# keys of the worker's periodic report to the master
# rows not yet shipped by a ROWS message
REPORT_ROWS = "llm_rows"
# its requests in flight now
REPORT_IN_FLIGHT = "llm_in_flight"
# its open loop's requests waiting for a slot now
REPORT_QUEUED = "llm_queued"
# its CPU figures: {"seconds", "bound_seconds", "max_share", "share"}
REPORT_CPU = "llm_cpu"


def grant_request(want: int) -> dict[str, int]:
    return {"want": want}


def grant(count: int) -> dict[str, int]:
    return {"count": count}


def rows(batch: list[list[str]]) -> dict[str, list[list[str]]]:
    return {"rows": batch}


def level_tag(
    level: str = "", prompts: str | None = None, repeat: int | None = None, think: float | None = None
) -> dict[str, Any]:
    """What a level's arrivals and sends carry: its label, its prompt set, its repetition, its think time."""
    return {"level": level, "prompts": prompts, "repeat": repeat, "think": think}


def arrivals(batch: list[Any], cap: int | None, tag: dict[str, Any]) -> dict[str, Any]:
    return {"arrivals": [list(a) for a in batch], "cap": cap, **tag}


def closed_level(tag: dict[str, Any], concurrency: int, until: float, limit: int | None) -> dict[str, Any]:
    return {**tag, "concurrency": concurrency, "until": until, "limit": limit}


def cancel_level(level: str) -> dict[str, str]:
    return {"level": level}


def fatal(message: str) -> dict[str, str]:
    return {"message": message}


def level_done(level: str, sent: int) -> dict[str, Any]:
    return {"level": level, "sent": sent}


def listener(handler: Callable[[str, Any], None]) -> Callable[..., None]:
    """A Locust message listener that calls ``handler(the sender's id, data)``; data is {} when the message had none."""

    def listen(environment: Environment | None = None, msg: LocustMessage | None = None, **_kw: object) -> None:
        if msg is not None:
            handler(msg.node_id, msg.data or {})

    return listen
