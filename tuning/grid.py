"""The grid file (YAML): how to start the server, where it answers, the settings to sweep, the workload, the
repetitions and the objective. ``load_grid`` checks it all and raises GridError with one line naming the file.

    server: {command: "python -m emulator --port {port} --max-num-seqs {max_num_seqs} {enable_prefix_caching}"}
    url: http://127.0.0.1:0          # port 0: a free port for each point, filled into {port}
    ready_timeout_s: 120
    settings: {max_num_seqs: [4, 8], enable_prefix_caching: [true, false]}   # the product; or points: [...]
    workload: ["-u", "8", "-n", "200", "--input-tokens", "1024", "--prefix-tokens", "768"]
    repeat: 1
    objective: {maximize: output_throughput, subject_to: ["p99_ttft_ms<=2000"]}
    workers: 2                       # the workload distributed: a master and 2 workers (default 0: one process)
    gpus: tensor_parallel_size       # GPUs per point, a number or a setting's name: the Pareto chart per GPU

In ``command`` a true/false setting ``{NAME}`` becomes ``--name`` / ``--no-name`` (underscores as dashes); any
other ``{NAME}`` its value; ``{port}`` the port of ``url``.

Instead of ``command``, the server may be a docker compose service or a Kubernetes Deployment; the point's
settings then replace those flags in its arguments (``max_num_seqs: 8`` as ``--max-num-seqs 8``) and a setting
named in capitals is an environment variable:

    server: {compose: docker/vllm-nvidia.compose.yml, service: vllm, env_file: docker/.env}
    server: {kubernetes: vllm.yaml, deployment: vllm, namespace: default}   # kubectl kustomize ... > vllm.yaml
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

KEYS = ("server", "url", "ready_timeout_s", "settings", "points", "workload", "repeat", "objective", "workers", "gpus")
SERVER_KINDS = ("command", "compose", "kubernetes")
SERVER_KEYS = {
    "command": ("command",),
    "compose": ("compose", "service", "env_file"),
    "kubernetes": ("kubernetes", "deployment", "namespace"),
}
Value = bool | int | float | str


class GridError(ValueError):
    """A grid that cannot be run: one line, naming the file (and the point)."""


@dataclass(frozen=True)
class Objective:
    key: str
    maximize: bool
    subject_to: tuple[Check, ...] = ()


@dataclass(frozen=True)
class ServerSpec:
    """How a point's server is started: a local ``command``, a compose ``file`` and ``service`` (``name``), or
    a Kubernetes manifest ``file`` and ``deployment`` (``name``)."""

    kind: str = "command"
    command: str = ""
    file: str = ""
    name: str = ""
    env_file: str = ""
    namespace: str = ""


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
    # the settings that take more than one value
    varied: tuple[str, ...] = field(default=())
    server: ServerSpec = field(default=ServerSpec())
    workers: int = 0
    # per point: a number, or the setting that says
    gpus: int | str | None = None

    def gpus_of(self, point: dict[str, Value]) -> int | None:
        """The GPUs a point's server uses (None: the grid does not say)."""
        if isinstance(self.gpus, str):
            return int(point[self.gpus])
        return self.gpus

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
        values[key] = " ".join(flag_of(key, value)) if isinstance(value, bool) else str(value)
    return template.format(**values)


def flag_of(key: str, value: Value) -> list[str]:
    """A setting as arguments: ``--max-num-seqs 8``; true/false as ``--name`` / ``--no-name``."""
    flag = "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return [flag] if value else ["--no-" + flag[2:]]
    return [flag, str(value)]


def is_environment(key: str) -> bool:
    """A setting named in capitals (``VLLM_ATTENTION_BACKEND``) is an environment variable, not a flag."""
    return key.isupper()


def with_settings(args: list[str], point: dict[str, Value]) -> list[str]:
    """A server's arguments with the point's flags in place of any it had (``--x``, ``--no-x``, ``--x V``,
    ``--x=V``), appended at the end."""
    keys = [k for k in point if not is_environment(k)]
    names = {f"--{k.replace('_', '-')}" for k in keys} | {f"--no-{k.replace('_', '-')}" for k in keys}
    kept: list[str] = []
    skip_value = False
    for arg in args:
        if skip_value:
            skip_value = False
            if not arg.startswith("--"):
                continue
        name = arg.split("=", 1)[0]
        if name in names:
            skip_value = "=" not in arg and not name.startswith("--no-")
            continue
        kept.append(arg)
    return kept + [a for k in keys for a in flag_of(k, point[k])]


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
    server = _server(path, data.get("server"))
    command = server.command
    points = _points(path, data)
    url = str(data.get("url") or "")
    if not url.startswith(("http://", "https://")) or not urlsplit(url).hostname:
        raise GridError(f"{path}: url must be http://HOST:PORT (the server the workload targets), got {url!r}")
    _check_placeholders(path, server, url, points)
    workload = data.get("workload") or []
    if not isinstance(workload, list) or not all(isinstance(a, str | int | float) for a in workload):
        raise GridError(f"{path}: workload must be a list of the suite's arguments, e.g. ['-u', '8', '-n', '200']")
    for taken in ("-H", "--host", "--csv", "--headless"):
        if taken in workload:
            raise GridError(f"{path}: workload: drop {taken} (the loop sets it for each point)")
    varied = tuple(k for k in points[0] if len({repr(p[k]) for p in points}) > 1)
    return Grid(
        path,
        command,
        url,
        _number(path, data, "ready_timeout_s", 300.0),
        points,
        tuple(str(a) for a in workload),
        int(_number(path, data, "repeat", 1)),
        _objective(path, data),
        varied,
        server,
        _workers(path, data),
        _gpus(path, data, points),
    )


def _check_placeholders(path: str, server: ServerSpec, url: str, points: tuple[dict[str, Value], ...]) -> None:
    """A command server names each setting as a placeholder, and a port it may choose; others publish one."""
    if server.kind == "command":
        missing = _placeholders(server.command) - set(points[0]) - {"port"}
        if missing:
            raise GridError(f"{path}: server.command names {{{sorted(missing)[0]}}}, which no setting gives")
        unused = set(points[0]) - _placeholders(server.command)
        if unused:
            raise GridError(
                f"{path}: setting {sorted(unused)[0]} is not in server.command (write {{{sorted(unused)[0]}}})"
            )
        if "{port}" in server.command and urlsplit(url).port is None:
            raise GridError(f"{path}: server.command has {{port}}: give url a port (0: a free one for each point)")
    elif not urlsplit(url).port:
        raise GridError(f"{path}: url needs the port server.{server.kind} publishes (the loop does not choose it)")


def _server(path: str, server: Any) -> ServerSpec:
    kinds = [k for k in SERVER_KINDS if isinstance(server, dict) and k in server]
    if len(kinds) != 1:
        raise GridError(
            f"{path}: server needs one of: command (a template), compose and service, kubernetes and deployment"
        )
    kind = kinds[0]
    unknown = sorted(set(server) - set(SERVER_KEYS[kind]))
    if unknown:
        raise GridError(
            f"{path}: server.{unknown[0]} does not go with server.{kind} (it takes {', '.join(SERVER_KEYS[kind])})"
        )
    values = {k: server.get(k) for k in SERVER_KEYS[kind]}
    for key, value in values.items():
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise GridError(f"{path}: server.{key} must be a non-empty string")
    if kind == "command":
        return ServerSpec(command=str(values["command"]))
    name_key = "service" if kind == "compose" else "deployment"
    if not values[name_key]:
        raise GridError(f"{path}: server.{kind} needs server.{name_key} (which one to start)")
    spec = ServerSpec(
        kind,
        file=str(values[kind]),
        name=str(values[name_key]),
        env_file=str(values.get("env_file") or ""),
        namespace=str(values.get("namespace") or ""),
    )
    try:
        server_base(spec)
    except GridError as exc:
        raise GridError(f"{path}: server.{kind}: {exc}") from None
    return spec


def documents(path: str) -> list[Any]:
    """A YAML file's documents (GridError when it cannot be read or parsed)."""
    try:
        with open(path, encoding="utf-8") as f:
            return [d for d in yaml.safe_load_all(f) if d is not None]
    except OSError as exc:
        raise GridError(f"cannot read {path} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise GridError(f"{path} is not YAML ({str(exc).splitlines()[0]})") from None


def server_base(spec: ServerSpec) -> dict:
    """The compose service, or the Kubernetes Deployment, a point's settings go into."""
    docs = documents(spec.file)
    if spec.kind == "compose":
        services = (docs[0] if docs and isinstance(docs[0], dict) else {}).get("services") or {}
        if spec.name not in services:
            raise GridError(f"{spec.file} has no service {spec.name!r} (it has: {', '.join(services) or 'none'})")
        return dict(services[spec.name])
    found = [
        d
        for d in docs
        if isinstance(d, dict) and d.get("kind") == "Deployment" and (d.get("metadata") or {}).get("name") == spec.name
    ]
    if not found:
        raise GridError(f"{spec.file} has no Deployment {spec.name!r}")
    return dict(found[0])


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


def _workers(path: str, data: dict) -> int:
    value = data.get("workers", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise GridError(f"{path}: workers must be a whole number of Locust workers (0: no master), got {value!r}")
    return value


def _gpus(path: str, data: dict, points: tuple[dict[str, Value], ...]) -> int | str | None:
    value = data.get("gpus")
    if value is None:
        return None
    if isinstance(value, str):
        for point in points:
            got = point.get(value)
            if isinstance(got, bool) or not isinstance(got, int) or got < 1:
                raise GridError(
                    f"{path}: point {point_name(point)}: gpus names {value}, which must be a whole "
                    f"number of GPUs there, got {got!r}"
                )
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GridError(f"{path}: gpus must be a number of GPUs per point, or the name of the setting that says")
    return value


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
