"""A sweep or a capacity search: one level after another in one Locust run (workers stay up).

``SweepDriver`` asks the plan (``scheduler.levels``) for each level, prepares the server's prefix
cache the same way before every level, runs the level through a port (``LocalPort``: this
process's open loop; ``MasterPort``: the workers, through the master), watches it for
over-saturation, waits for its requests to finish, and writes ``PREFIX_levels.csv``. The
finished requests reach it through ``observe`` (a local process's records, a master's shipped rows).
"""

from __future__ import annotations

import csv
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import gevent

from llmclient.errors import ConfigError
from llmclient.schema import Row
from scheduler.arrivals import ConstantRate, schedule
from scheduler.levels import (
    LEVEL_LOG_COLUMNS,
    Level,
    LevelResult,
    SaturationTest,
    capacity,
    capacity_sentence,
    design_effect,
    fewest_to_pass,
    format_windows,
    level_result,
)
from scheduler.slo import format_slo
from users.load.open_loop import Due, OpenLoop
from users.settings.mode import Levels

if TYPE_CHECKING:
    from users.services.run import LLMRun

logger = logging.getLogger(__name__)

# a level's first arrival is due this long after it starts (open_loop.START_LEAD_S: a run's)
LEVEL_START_LEAD_S = 0.2
# the saturation test's sampling interval
TICK_S = 1.0
# after its last send, a level's requests get this long to finish, then are cut off
DRAIN_LIMIT_S = 120.0
# after a cut-off, how long to wait for the cancelled requests' rows
SETTLE_S = 5.0


def level_arrivals(
    level: Level, start: float, until: float, limit: int | None, burstiness: float, seed: int
) -> Iterator[Due]:
    """A rate level's arrivals (unix due times), from ``start`` until ``until`` or ``limit`` of them."""
    for arrival in schedule(ConstantRate(level.arrival_rate), burstiness, seed * 1000 + level.number, total=limit):
        due = start + arrival.offset_s
        if due >= until:
            return
        yield Due(due)


class LoadPort(Protocol):
    """Where a level's load is sent from."""

    def start_level(self, level: Level, label: str, until: float, limit: int | None) -> None: ...

    def sending(self) -> bool: ...

    def expected_rows(self) -> int | None: ...

    def in_flight(self, rows: int) -> int: ...

    def cancel(self) -> None: ...


class LocalPort:
    """A local run's levels go through its own open loop."""

    def __init__(self, open_loop: OpenLoop, burstiness: float, seed: int) -> None:
        self.open_loop = open_loop
        self.burstiness = burstiness
        self.seed = seed
        self.sent = 0

    def start_level(self, level: Level, label: str, until: float, limit: int | None) -> None:
        self.open_loop.begin_level(label, level.repeat, level.think_time)
        self.sent = 0
        start = time.time() + LEVEL_START_LEAD_S
        if level.prompt_set:
            self.open_loop.run.prompts.use_prompt_set(level.prompt_set)
        if level.open_loop:
            self.open_loop.start(self._counted(level_arrivals(level, start, until, limit, self.burstiness, self.seed)))
        else:
            self.open_loop.start_closed(level.in_flight, until, limit, on_send=self._count)

    def _count(self) -> None:
        self.sent += 1

    def _counted(self, arrivals: Iterator[Due]) -> Iterator[Due]:
        for arrival in arrivals:
            self.sent += 1
            yield arrival

    def sending(self) -> bool:
        return self.open_loop.sending

    def expected_rows(self) -> int | None:
        """Requests (with sessions: sessions) sent, once sending is over."""
        return None if self.open_loop.sending else self.sent - self.open_loop.unsent

    def in_flight(self, rows: int) -> int:
        return self.open_loop.run.context.in_flight

    def cancel(self) -> None:
        self.open_loop.cancel()


@dataclass
class LevelRows:
    """The level running now: its finished requests, and its sending windows (an extension adds one)."""

    label: str
    started: float = 0.0
    ended: float = 0.0
    extensions: int = 0
    windows: list[tuple[float, float]] = field(default_factory=list)
    # rows already in a saturation-test sample
    seen: int = 0
    start: list[float] = field(default_factory=list)
    success: list[bool] = field(default_factory=list)
    cancelled: list[bool] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    tpot: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    # rows that ended a session
    sessions_ended: int = 0

    def add(
        self,
        start: float,
        success: bool,
        cancelled: bool,
        ttft: float | None,
        tpot: float | None,
        e2e: float | None,
        last_turn: bool = False,
    ) -> None:
        self.sessions_ended += last_turn
        self.start.append(start)
        self.success.append(success)
        self.cancelled.append(cancelled)
        self.ttft.append(math.nan if ttft is None else ttft)
        self.tpot.append(math.nan if tpot is None else tpot)
        self.e2e.append(math.nan if e2e is None else e2e)

    def __len__(self) -> int:
        return len(self.start)

    def extend(self) -> None:
        """The level is extended: it sends again (its next window)."""
        self.extensions += 1

    def end(self) -> None:
        self.ended = time.time()

    def ttft_median_of_new(self) -> float | None:
        """The median TTFT of the requests that finished since the last call (cancelled ones left out)."""
        start, self.seen = self.seen, len(self.ttft)
        recent = [
            t for t, c in zip(self.ttft[start:], self.cancelled[start:], strict=True) if not c and not math.isnan(t)
        ]
        return statistics.median(recent) if recent else None


class SweepDriver:
    """Runs the levels of a sweep, a capacity search or repetitions (``levels``: the run's mode), one at a time."""

    def __init__(
        self, run: LLMRun, port: LoadPort, levels: Levels, csv_prefix: str | None, host: str, on_end: Callable[[], None]
    ) -> None:
        self.run = run
        self.host = host
        self.port = port
        self.levels = levels
        # a fresh plan for this test (a capacity search keeps state)
        self.plan = levels.plan()
        self.settings = run.context.settings
        self.path = f"{csv_prefix}_levels.csv" if csv_prefix else None
        self.on_end = on_end
        self.rows = LevelRows("")
        # each of a level's arrivals (or a closed level's sends) is a session, counted when its last turn ends
        self.sessions = run.context.settings.in_sessions
        self.results: list[LevelResult] = []
        self.cache = ""
        self._loop: gevent.Greenlet[..., None] | None = None

    def start(self) -> None:
        if self.path:
            with open(self.path, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow(LEVEL_LOG_COLUMNS)
        self._loop = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.kill(block=False)
            self._loop = None

    def observe(self, row: Row) -> None:
        """A finished request (of any level: only the running level's are kept)."""
        f = row
        if f.level and f.level == self.rows.label:
            start = math.nan if f.start_time is None else f.start_time
            self.rows.add(start, f.success, f.cancelled, f.ttft_s, f.tpot_s, f.e2e_s, f.last_turn)

    def done(self) -> int:
        """What the level has seen end: its requests, or with sessions (each arrival a session) its sessions."""
        return self.rows.sessions_ended if self.sessions else len(self.rows)

    # -- the levels ----------------------------------------------------------------------------
    def _run(self) -> None:
        s = self.settings
        if s.measurement.slo:
            logger.info(
                "a level passes when at least %.1f%% of its requests meet %s with 95%% confidence: it needs "
                "%d requests or more, all meeting it, and more where misses come in bursts",
                100 * s.measurement.slo_attainment,
                s.measurement.slo,
                fewest_to_pass(s.measurement.slo_attainment),
            )
        try:
            while (level := self.plan.next_level(self.results)) is not None:
                self.cache = self.run.primer.prepare_level(self.host)
                profiled = s.measurement.profile_level == level.number
                # --profile-level: this level's requests only, after its cache is prepared
                if profiled:
                    self.run.primer.start_profile(self.host)
                result = self._run_level(level)
                while self.plan.extend(result, self.results):
                    logger.info(
                        "%s: attainment too close to call, %d more requests' worth", level.label, len(self.rows)
                    )
                    result = self._run_level(level, extending=True)
                if profiled:
                    self.run.primer.stop_profile()
                self.results.append(result)
                self._log(result)
            self._conclude()
        except gevent.GreenletExit:
            # stopped from outside (Ctrl-C, -t, the web UI's stop): the run is ending already
            return
        except ConfigError as exc:
            logger.error("the sweep cannot go on: %s", exc)
        except Exception:
            logger.exception("the sweep failed")
        self.on_end()

    def _run_level(self, level: Level, extending: bool = False) -> LevelResult:
        s = self.settings
        label = str(level.number)
        if not extending:
            self.rows = LevelRows(label, started=time.time())
        else:
            self.rows.extend()
        start = time.time()
        duration = self.levels.duration
        until = start + LEVEL_START_LEAD_S + duration if duration else math.inf
        logger.info("%s%s", level.label, " (extended)" if extending else "")
        self.run.live.begin_level({"level": level.number, "kind": level.kind, "value": level.value})
        self.port.start_level(level, label, until, self.levels.requests)
        saturated, send_end = self._watch_level(level, until)
        if saturated or self.port.sending() or self.port.expected_rows() != self.done():
            self.port.cancel()
            settle = time.monotonic() + SETTLE_S
            while (self.port.expected_rows() or 0) > self.done() and time.monotonic() < settle:
                gevent.sleep(0.1)
        send_end = send_end or time.time()
        self.rows.windows.append((start + LEVEL_START_LEAD_S, send_end))
        result = level_result(
            level,
            self.rows.start,
            self.rows.success,
            self.rows.cancelled,
            self.rows.ttft,
            self.rows.tpot,
            self.rows.e2e,
            self.rows.windows,
            s.measurement.slo,
            saturated,
        )
        self.rows.end()
        return result

    def _watch_level(self, level: Level, until: float) -> tuple[bool, float | None]:
        """Wait for a level's rows: whether it was cut off past saturation, and when its sending ended."""
        test = SaturationTest()
        send_end: float | None = None
        # a think-time level's sessions think between their turns
        drain = DRAIN_LIMIT_S + (level.think_time * self.run.sessions.most_turns if level.think_time else 0.0)
        while True:
            gevent.sleep(TICK_S)
            now = time.time()
            if send_end is None and (not self.port.sending() or now >= until):
                send_end = min(now, until)
            expected = self.port.expected_rows()
            if expected is not None and self.done() >= expected and not self.port.sending():
                return False, send_end
            # (a think-time level's load is its session rate; its TTFT grows with what the cache forgets)
            if level.open_loop and level.think_time is None:
                test.add(self.port.in_flight(len(self.rows)), self.rows.ttft_median_of_new())
                if test.saturated():
                    logger.warning(
                        "%s: past saturation (requests in flight and TTFT both kept growing over %d s): cut off",
                        level.label,
                        test.window,
                    )
                    return True, send_end
            if send_end is not None and now - send_end > drain:
                logger.warning("%s: requests still running %.0f s after the last send: cut off", level.label, drain)
                return False, send_end

    def _log(self, result: LevelResult) -> None:
        level = result.level
        design = design_effect([*self.results])
        low, high = result.interval(design)
        if self.settings.measurement.slo:
            share = f"SLO attainment {100 * result.attainment:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"
        else:
            share = f"success rate {100 * result.attainment:.1f}%"
        logger.info(
            "%s: %d requests, achieved %.2f req/s, %s%s",
            level.label,
            result.requests,
            result.achieved_rate,
            share,
            " (saturated)" if result.saturated else ("" if result.resolved else " (unresolved)"),
        )
        self._write_log_row(level, result)
        self.run.live.levels.append(
            {
                "level": level.number,
                "kind": level.kind,
                "value": level.value,
                "purpose": level.purpose,
                "requests": result.requests,
                "achieved_rate": result.achieved_rate,
                "slo_attainment": result.attainment if self.settings.measurement.slo else None,
                "slo_attainment_ci": [low, high] if self.settings.measurement.slo else None,
                "success_rate": result.attainment if not self.settings.measurement.slo else None,
                "saturated": result.saturated,
                "resolved": result.resolved,
                "median_ttft_ms": _median_ms(self.rows.ttft, self.rows.cancelled),
            }
        )

    def _write_log_row(self, level: Level, result: LevelResult) -> None:
        """The level's line in PREFIX_levels.csv (LEVEL_LOG_COLUMNS), when there is a log."""
        if not self.path:
            return
        rows = self.rows
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow(
                [
                    level.number,
                    level.kind,
                    repr(level.value),
                    level.purpose,
                    repr(rows.started),
                    repr(rows.windows[-1][1]),
                    repr(rows.ended),
                    result.saturated,
                    result.resolved,
                    rows.extensions,
                    self.cache,
                    "" if level.repeat is None else level.repeat,
                    format_windows(rows.windows),
                ]
            )

    def _conclude(self) -> None:
        self.run.live.begin_level(None)
        if not self.settings.load.find_capacity:
            return
        answer = capacity(self.results, self.settings.measurement.slo_attainment)
        unresolved = [r.level.number for r in self.results if not r.resolved]
        logger.info(
            "%s%s",
            capacity_sentence(
                answer, format_slo(self.settings.measurement.slo), self.settings.measurement.slo_attainment
            ),
            f" Unresolved levels: {unresolved}." if unresolved else "",
        )


def _median_ms(values: list[float], cancelled: list[bool]) -> float | None:
    kept = [v for v, c in zip(values, cancelled, strict=True) if not c and not math.isnan(v)]
    return 1000 * statistics.median(kept) if kept else None
