"""The grid file (YAML): how to start the server, where it answers, the settings to sweep, the workload, the
repetitions and the objective. ``load_grid`` checks it all and raises GridError with one line naming the file.

    server: {command: "python -m emulator --port {port} --max-num-seqs {max_num_seqs} {enable_prefix_caching}"}
    url: http://127.0.0.1:0          # port 0: a free port for each point, filled into {port}
    ready_timeout_s: 120
    settings: {max_num_seqs: [4, 8], enable_prefix_caching: [true, false]}   # the product; or points: [...]
    workload: ["-u", "8", "-n", "200", "--input-tokens", "1024", "--prefix-tokens", "768"]
    repeat: 1
    objective: {maximize: output_throughput, subject_to: ["p99_ttft_ms<=2000"]}

In ``command`` a true/false setting ``{NAME}`` becomes ``--name`` / ``--no-name`` (underscores as dashes); any
other ``{NAME}`` its value; ``{port}`` the port of ``url``.
"""

from __future__ import annotations

import itertools
import re
import string
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from reports.checks import Check, parse_check
from reports.keys import unknown_key_error

KEYS = ("server", "url", "ready_timeout_s", "settings", "points", "workload", "repeat", "objective")
SERVER_KINDS = ("command", "compose", "kubernetes")
Value = bool | int | float | str


class GridError(ValueError):
    """A grid that cannot be run: one line, naming the file (and the point)."""


@dataclass(frozen=True)
class Objective:
    key: str
    maximize: bool
    subject_to: tuple[Check, ...] = ()


@dataclass(frozen=True)
class Grid:
    path: str
    command: str
    url: str
    ready_timeout_s: float
    points: tuple[dict[str, Value], ...]
    workload: tuple[str, ...]
    repeat: int
    objective: Objective | None = None
    varied: tuple[str, ...] = field(default=())  # the settings that take more than one value

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 0


def point_name(point: dict[str, Value]) -> str:
    """A point's folder name: ``max_num_seqs-4_enable_prefix_caching-true``."""
    parts = [f"{k}-{str(v).lower() if isinstance(v, bool) else v}" for k, v in point.items()]
    return re.sub(r"[^A-Za-z0-9_.=-]", "", "_".join(parts)) or "default"


def command_for(template: str, point: dict[str, Value], port: int) -> str:
    """The server's command line for a point (``{port}``, ``{NAME}``; a true/false setting as its flag)."""
    values: dict[str, str] = {"port": str(port)}
    for key, value in point.items():
        flag = key.replace("_", "-")
        values[key] = (f"--{flag}" if value else f"--no-{flag}") if isinstance(value, bool) else str(value)
    return template.format(**values)


def load_grid(path: str) -> Grid:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise GridError(f"{path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise GridError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise GridError(f"{path}: expected a mapping of {', '.join(KEYS)}")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise GridError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})")
    command = _server(path, data.get("server"))
    points = _points(path, data)
    missing = _placeholders(command) - set(points[0]) - {"port"}
    if missing:
        raise GridError(f"{path}: server.command names {{{sorted(missing)[0]}}}, which no setting gives")
    unused = set(points[0]) - _placeholders(command)
    if unused:
        raise GridError(f"{path}: setting {sorted(unused)[0]} is not in server.command (write {{{sorted(unused)[0]}}})")
    url = str(data.get("url") or "")
    if not url.startswith(("http://", "https://")) or not urlsplit(url).hostname:
        raise GridError(f"{path}: url must be http://HOST:PORT (the server the workload targets), got {url!r}")
    if "{port}" in command and urlsplit(url).port is None:
        raise GridError(f"{path}: server.command has {{port}}: give url a port (0: a free one for each point)")
    workload = data.get("workload") or []
    if not isinstance(workload, list) or not all(isinstance(a, str | int | float) for a in workload):
        raise GridError(f"{path}: workload must be a list of the suite's arguments, e.g. ['-u', '8', '-n', '200']")
    for taken in ("-H", "--host", "--csv", "--headless"):
        if taken in workload:
            raise GridError(f"{path}: workload: drop {taken} (the loop sets it for each point)")
    varied = tuple(k for k in points[0] if len({repr(p[k]) for p in points}) > 1)
    return Grid(path, command, url, _number(path, data, "ready_timeout_s", 300.0), points,
                tuple(str(a) for a in workload), int(_number(path, data, "repeat", 1)), _objective(path, data),
                varied)  # fmt: skip


def _server(path: str, server: Any) -> str:
    if not isinstance(server, dict) or not set(server) & set(SERVER_KINDS):
        raise GridError(f"{path}: server needs command (a template), or compose and service, or kubernetes and "
                        "deployment")  # fmt: skip
    if "command" not in server:
        kind = next(k for k in SERVER_KINDS if k in server)
        raise GridError(f"{path}: server.{kind} is not supported yet: give server.command")
    command = server["command"]
    if not isinstance(command, str) or not command.strip():
        raise GridError(f"{path}: server.command must be a command line template")
    return command


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _points(path: str, data: dict) -> tuple[dict[str, Value], ...]:
    if ("settings" in data) == ("points" in data):
        raise GridError(f"{path}: give settings (a grid: name: [values]) or points (a list), one of them")
    if "settings" in data:
        grid = data["settings"]
        if not isinstance(grid, dict) or not grid:
            raise GridError(f"{path}: settings must map each setting to a list of its values")
        for name, values in grid.items():
            if not isinstance(values, list) or not values:
                raise GridError(f"{path}: settings.{name} must be a non-empty list of values")
        names = list(grid)
        points = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]
    else:
        points = data["points"]
        if not isinstance(points, list) or not points or not all(isinstance(p, dict) and p for p in points):
            raise GridError(f"{path}: points must be a non-empty list of mappings of settings")
        if any(set(p) != set(points[0]) for p in points):
            raise GridError(f"{path}: every point must name the same settings")
    for point in points:
        bad = [k for k, v in point.items() if not isinstance(v, bool | int | float | str)]
        if bad:
            raise GridError(f"{path}: point {point_name(point)}: {bad[0]} must be a number, a string or true/false")
    return tuple(points)


def _number(path: str, data: dict, key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise GridError(f"{path}: {key} must be a positive number, got {value!r}")
    return float(value)


def _objective(path: str, data: dict) -> Objective | None:
    spec = data.get("objective")
    if spec is None:
        return None
    if not isinstance(spec, dict) or len({"maximize", "minimize"} & set(spec)) != 1:
        raise GridError(f"{path}: objective needs maximize: KEY or minimize: KEY (and subject_to: [checks])")
    maximize = "maximize" in spec
    key = str(spec["maximize" if maximize else "minimize"])
    problem = unknown_key_error(key)
    if problem:
        raise GridError(f"{path}: objective: {problem.removeprefix('--check: ')}")
    try:
        checks = tuple(parse_check(str(text)) for text in spec.get("subject_to") or [])
    except ValueError as exc:
        raise GridError(f"{path}: objective.subject_to: {exc}") from None
    return Objective(key, maximize, checks)
