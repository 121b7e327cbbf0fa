"""For each point of the grid: start its server, wait until ready, confirm it runs the point's settings, run the
workload as its own headless Locust process, stop the server; a point that fails is recorded with its reason
and the grid goes on. Results as they come: ``points/NAME/`` (the suite's files), ``tuning.csv`` and
``tuning_summary.json`` (``points``, ``best``, ``setting_effects``)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

from reports.checks import judge
from reports.load import ReportInputError, load_run
from reports.summary import json_safe, summary_of
from tuning.effects import setting_effects
from tuning.grid import Grid, Value, point_name
from tuning.launchers import launcher_for
from tuning.report import write_tuning_report
from tuning.results import FIGURES, PointResult
from tuning.server import ServerFailed, cache_config, free_port, interrupt_after, mismatches, wait_port_free

LOCUSTFILE = str(Path(__file__).resolve().parents[1] / "locustfile.py")
# the workload's process, before its role and arguments
LOCUST = (sys.executable, "-m", "locust", "-f", LOCUSTFILE)
# Locust's own (1: failed requests) and a failed --check still give a summary
WORKLOAD_STATUSES = (0, 1, 3)


def url_with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))


def run_workload(grid: Grid, url: str, prefix: str, log_path: str) -> int:
    """The workload as a headless Locust process of its own, or a master and ``workers`` workers (their
    process groups killed if the loop is stopped). The master's status is the workload's."""
    command = [*LOCUST, "--headless", "-H", url, "--csv", prefix, "--only-summary", *grid.workload]
    if grid.workers:
        master = ["--master-bind-host", "127.0.0.1", "--master-bind-port", "0", "--expect-workers", str(grid.workers)]
        command += ["--master", *master]
    procs: list[subprocess.Popen[bytes]] = []
    with open(log_path, "ab") as log:
        try:
            offset = log.tell()
            # a Ctrl-C while a process starts would leave it running, unknown
            with interrupt_after():
                procs.append(_spawn(command, log))
            if grid.workers:
                port = _master_port(log_path, offset, procs[0])
                worker = [*LOCUST, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
                for _ in range(grid.workers):
                    with interrupt_after():
                        procs.append(_spawn(worker, log))
            status = procs[0].wait()
            for proc in procs[1:]:
                try:
                    # a worker ends when its master says so
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            return status
        except BaseException:
            for proc in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            raise


def _spawn(command: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )


MASTER_PORT = re.compile(rb"master listening for workers on port (\d+)")


def _master_port(log_path: str, offset: int, master: subprocess.Popen[bytes], timeout_s: float = 60.0) -> int:
    """The port the master bound (port 0: the system's choice), read from its log line."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and master.poll() is None:
        with open(log_path, "rb") as f:
            f.seek(offset)
            found = MASTER_PORT.search(f.read())
        if found:
            return int(found.group(1))
        time.sleep(0.1)
    raise ServerFailed(f"the workload's master did not start (see {log_path})")


def run_point(grid: Grid, point: dict[str, Value], folder: Path, say: Callable[[str], None]) -> PointResult:
    result = PointResult(point_name(point), point)
    folder.mkdir(parents=True, exist_ok=True)
    for repeat in range(1, grid.repeat + 1):
        url = url_with_port(grid.url, grid.port or free_port(urlsplit(grid.url).hostname or "127.0.0.1"))
        server = launcher_for(grid, point, urlsplit(url).port or 0, folder)
        run_dir = folder / f"r{repeat}" if grid.repeat > 1 else folder
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            server.start()
            server.wait_ready(url, grid.ready_timeout_s)
            wrong = mismatches(point, cache_config(url))
            if wrong:
                raise ServerFailed("the server does not run the point's settings: " + "; ".join(wrong))
            say(f"point {result.name}{f' repeat {repeat}' if grid.repeat > 1 else ''}: running the workload")
            status = run_workload(grid, url, str(run_dir / "run"), str(folder / "locust.log"))
            if not server.alive():
                raise ServerFailed(f"the server died during the workload: {server.tail()}")
            if status not in WORKLOAD_STATUSES:
                raise ServerFailed(f"the workload exited with status {status} (see {folder / 'locust.log'})")
            summary = run_summary(str(run_dir / "run"))
            # points/NAME[/rK]/run, under --out
            run = str((run_dir / "run").relative_to(folder.parents[1]))
            result.repeats.append(
                {
                    "repeat": repeat,
                    "run": run,
                    "duration_s": summary.get("duration_s"),
                    **{k: summary.get(k) for k in FIGURES},
                    **{f"{k}_ci": summary[f"{k}_ci"] for k in FIGURES if f"{k}_ci" in summary},
                }
            )
        except (ServerFailed, ReportInputError) as exc:
            result.status, result.reason = "failed", str(exc)
            return result
        finally:
            server.stop()
            wait_port_free(url)
    return result


def run_summary(prefix: str) -> dict:
    """The workload's summary: the one its ``--check`` wrote, else computed from its files."""
    written = Path(f"{prefix}_summary.json")
    if written.exists():
        return dict(json.loads(written.read_text(encoding="utf-8")))
    summary, _notes = summary_of(load_run(prefix), {})
    return summary


def run_grid(grid: Grid, out: Path, resume: bool, say: Callable[[str], None] = print) -> dict:
    """Every point in turn (``resume``: those whose results are complete are read back, not run again)."""
    results: list[PointResult] = []
    summary: dict = {}
    for point in grid.points:
        name = point_name(point)
        folder = out / "points" / name
        done = folder / "point.json"
        if resume and done.exists():
            kept = PointResult(**json.loads(done.read_text(encoding="utf-8")))
            if kept.status == "ok":
                say(f"point {name}: done before (--resume)")
                results.append(kept)
                # written once a point runs, or at the end
                summary = {}
                continue
        result = run_point(grid, point, folder, say)
        done.write_text(json.dumps(asdict(result), indent=2), encoding="utf-8")
        say(f"point {name}: {result.status}{': ' + result.reason if result.reason else ''}")
        results.append(result)
        # after each point: the page can be read as the grid runs
        summary = write_results(grid, out, results)
    return summary or write_results(grid, out, results)


def write_results(grid: Grid, out: Path, results: list[PointResult]) -> dict:
    names = list(grid.points[0])
    with open(out / "tuning.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["point", "repeat", "status", *names, *FIGURES])
        for r in results:
            for rep in r.repeats or [{"repeat": ""}]:
                writer.writerow(
                    [
                        r.name,
                        rep.get("repeat"),
                        r.status,
                        *(_cell(r.settings[n]) for n in names),
                        *("" if rep.get(k) is None else rep.get(k) for k in FIGURES),
                    ]
                )
    summary = {
        "points": [
            {
                "name": r.name,
                "settings": r.settings,
                "status": r.status,
                "reason": r.reason,
                "figures": r.figures,
                "repeats": r.repeats,
                **({"gpus": grid.gpus_of(r.settings)} if grid.gpus is not None else {}),
            }
            for r in results
        ],
        "best": best(grid, results),
        "setting_effects": setting_effects(grid, results, out),
    }
    (out / "tuning_summary.json").write_text(json.dumps(json_safe(summary), indent=2), encoding="utf-8")
    write_tuning_report(out, summary)
    return summary


def best(grid: Grid, results: list[PointResult]) -> dict | None:
    """The point that does best by the objective, among those whose conditions pass as ``--check`` judges
    them (the whole interval within the bound); ``distinguishable``: whether its objective's interval
    clears the runner-up's (false: the two are not told apart by these runs, ``next`` names it)."""
    objective = grid.objective
    if objective is None:
        return None
    fit = [
        r
        for r in results
        if r.status == "ok"
        and isinstance(r.figures.get(objective.key), float | int)
        and all(judge(c, r.figures).outcome == "pass" for c in objective.subject_to)
    ]
    if not fit:
        return None
    sign = 1 if objective.maximize else -1
    ranked = sorted(fit, key=lambda r: -sign * float(r.figures[objective.key] or 0.0))  # type: ignore[arg-type]
    top = ranked[0]
    out = {"name": top.name, "settings": top.settings, "objective": objective.key, "value": top.figures[objective.key]}
    if len(ranked) > 1:
        out["next"] = ranked[1].name
        out["distinguishable"] = apart(
            top.figures.get(f"{objective.key}_ci"), ranked[1].figures.get(f"{objective.key}_ci")
        )
    return out


def apart(first: object, second: object) -> bool | None:
    """Whether two intervals do not overlap (None: either is missing)."""
    if not (isinstance(first, list) and isinstance(second, list)) or None in (*first, *second):
        return None
    return bool(first[1] < second[0] or second[1] < first[0])


def _cell(value: Value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
