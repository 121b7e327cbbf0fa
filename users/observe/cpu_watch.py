"""The client's CPU guard in a run: each process samples itself once a second (``llmclient.cpu``);
workers report theirs to the master with their heartbeats; the process that writes the files
judges the run at its end (one warning line, ``PREFIX_client_cpu.json``) and puts the busiest
process's share in each ``/metrics`` scrape's row (``client_cpu_share``) and the live figures."""

from __future__ import annotations

import json
import logging

import gevent

from llmclient.cpu import BOTTLENECK, CpuGuard, verdict

logger = logging.getLogger(__name__)


class CpuWatch:
    def __init__(self) -> None:
        self.guard = CpuGuard()
        self.workers: dict[str, dict[str, float]] = {}
        self._loop: gevent.Greenlet[..., None] | None = None

    def start(self) -> None:
        """A test starts: sample from now on, once a second."""
        self.stop()
        self.guard = CpuGuard()
        self.workers.clear()

        def loop() -> None:
            while True:
                gevent.sleep(1.0)
                self.guard.sample()

        self._loop = gevent.spawn(loop)

    def stop(self) -> None:
        if self._loop is not None:
            # the last stretch
            self.guard.sample()
            self._loop.kill(block=False)
            self._loop = None

    def report(self) -> dict[str, float]:
        """This process's figures, for the master."""
        return {**self.guard.report(), "share": self.guard.last_share or 0.0}

    def on_worker_report(self, worker: str, data: dict[str, float]) -> None:
        self.workers[worker] = data

    def share_now(self) -> float | None:
        """The busiest process's share of a core over its last second."""
        shares = [s for s in (self.guard.last_share, *(w.get("share") for w in self.workers.values())) if s is not None]
        return max(shares) if shares else None

    def peak_for_scrape(self) -> dict[str, float | None]:
        """The column of a ``/metrics`` row: the highest share of any process since the last scrape."""
        own = self.guard.take_peak()
        shares = [s for s in (own, *(w.get("share") for w in self.workers.values())) if s is not None]
        return {"client_cpu_share": max(shares) if shares else None}

    def finish(self, csv_prefix: str | None) -> dict[str, float | bool]:
        """The run's verdict: one warning line when the client was the bottleneck, and the file."""
        result = verdict([self.guard.report(), *self.workers.values()])
        if result["client_cpu_bound"]:
            logger.warning(
                "%s (a client process used or waited for over 90%% of a core for more than 10%% of the "
                "run; its busiest second: %.0f%%)",
                BOTTLENECK,
                100 * float(result["client_cpu_max_share"]),
            )
        if csv_prefix:
            with open(f"{csv_prefix}_client_cpu.json", "w", encoding="utf-8") as f:
                json.dump({**result, "processes": {"local": self.guard.report(), **self.workers}}, f, indent=2)
        return result
