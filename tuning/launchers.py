"""The servers a point can run on besides a local command: a docker compose service and a Kubernetes
Deployment. Each writes the point's server definition into the point's folder (``compose.override.yml``,
``kubernetes.yaml``: the base's arguments with the point's flags in place, the capitalised settings as its
environment), and drives ``docker compose`` or ``kubectl`` with it; the commands are built here, run at the edge.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from tuning.grid import Grid, ServerSpec, Value, command_for, documents, is_environment, server_base, with_settings
from tuning.server import Launcher, LocalServer, ServerFailed

# a docker compose or kubectl call (not the server's start-up: ready_timeout_s)
COMMAND_TIMEOUT_S = 120.0


def launcher_for(grid: Grid, point: dict[str, Value], port: int, folder: Path) -> Launcher:
    spec = grid.server
    log = str(folder / "server.log")
    if spec.kind == "compose":
        return ComposeServer(spec, point, folder, log)
    if spec.kind == "kubernetes":
        return KubernetesServer(spec, point, folder, log, port, grid.ready_timeout_s)
    return LocalServer(command_for(grid.command, point, port), log)


def _split(point: dict[str, Value]) -> dict[str, str]:
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in point.items() if is_environment(k)}


class _Commands(Launcher):
    """A server run by a command-line tool: each call logged to the point's server.log."""

    tool = ""

    def __init__(self, log_path: str) -> None:
        self.log_path = log_path

    def run(self, args: list[str], timeout_s: float = COMMAND_TIMEOUT_S) -> str:
        if shutil.which(args[0]) is None:
            raise ServerFailed(f"{args[0]} is not installed (server.{self.tool} needs it)")
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"$ {shlex.join(args)}\n")
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ServerFailed(f"{shlex.join(args[:3])} did not finish in {timeout_s:g} s") from None
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(done.stdout + done.stderr)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"status {done.returncode}"]
            raise ServerFailed(f"{shlex.join(args[:3])} failed: {last[0]}")
        return done.stdout

    def quiet(self, args: list[str]) -> str:
        """A call whose failure is not the point's (a status, the logs): "" then."""
        try:
            return self.run(args, 30.0)
        except ServerFailed:
            return ""


# how often a readiness wait asks ``docker compose ps`` (it polls /v1/models more often)
ALIVE_EVERY_S = 5.0


class ComposeServer(_Commands):
    """``docker compose -f FILE -f points/NAME/compose.override.yml up -d SERVICE``, then ``down``."""

    tool = "compose"
    # the last answer of ``ps``, and when (monotonic s)
    _alive, _asked = True, float("-inf")

    def __init__(self, spec: ServerSpec, point: dict[str, Value], folder: Path, log_path: str) -> None:
        super().__init__(log_path)
        self.spec, self.point = spec, point
        self.override = folder / "compose.override.yml"
        env = ["--env-file", spec.env_file] if spec.env_file else []
        self.compose = ["docker", "compose", "-f", spec.file, "-f", str(self.override), *env]

    def rendered(self) -> dict:
        """The override: the service's command with the point's flags, and its environment."""
        base = server_base(self.spec)
        command = base.get("command") or []
        args = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        service: dict[str, Any] = {"command": with_settings(args, self.point)}
        env = _split(self.point)
        if env:
            service["environment"] = env
        return {"services": {self.spec.name: service}}

    def commands(self) -> dict[str, list[str]]:
        name = self.spec.name
        return {
            "up": [*self.compose, "up", "-d", "--force-recreate", name],
            "ps": [*self.compose, "ps", "--status", "running", "-q", name],
            "logs": [*self.compose, "logs", "--no-color", "--tail", "8", name],
            "down": [*self.compose, "down", "--timeout", "30"],
        }

    def start(self) -> None:
        self.override.write_text(yaml.safe_dump(self.rendered(), sort_keys=False), encoding="utf-8")
        # pulls the image the first time
        self.run(self.commands()["up"], 900.0)

    def alive(self) -> bool:
        now = time.monotonic()
        if now - self._asked >= ALIVE_EVERY_S:
            self._alive, self._asked = bool(self.quiet(self.commands()["ps"]).strip()), now
        return self._alive

    def tail(self, lines: int = 8) -> str:
        return " | ".join(line for line in self.quiet(self.commands()["logs"]).splitlines() if line.strip())

    def stop(self) -> None:
        self.quiet(self.commands()["down"])


class KubernetesServer(_Commands):
    """``kubectl apply`` of the manifest with the point's arguments, ``rollout status``, a port-forward to
    ``url``'s port while the point runs; then the Deployment deleted."""

    tool = "kubernetes"

    def __init__(
        self, spec: ServerSpec, point: dict[str, Value], folder: Path, log_path: str, port: int, ready_timeout_s: float
    ) -> None:
        super().__init__(log_path)
        self.spec, self.point, self.port, self.ready_timeout_s = spec, point, port, ready_timeout_s
        self.manifest = folder / "kubernetes.yaml"
        self.kubectl = ["kubectl", *(["-n", spec.namespace] if spec.namespace else [])]
        self.forward: subprocess.Popen[bytes] | None = None
        container = server_base(spec)["spec"]["template"]["spec"]["containers"][0]
        ports = container.get("ports") or []
        # the port-forward's target
        self.container_port = int(ports[0]["containerPort"]) if ports else port

    def rendered(self) -> list[dict]:
        """The manifest's documents, the Deployment's first container with the point's arguments and environment."""
        out = []
        for doc in documents(self.spec.file):
            if (
                isinstance(doc, dict)
                and doc.get("kind") == "Deployment"
                and doc["metadata"].get("name") == self.spec.name
            ):
                container = doc["spec"]["template"]["spec"]["containers"][0]
                container["args"] = with_settings([str(a) for a in container.get("args") or []], self.point)
                env = [e for e in container.get("env") or [] if e.get("name") not in _split(self.point)]
                container["env"] = env + [{"name": k, "value": v} for k, v in _split(self.point).items()]
            out.append(doc)
        return out

    def commands(self) -> dict[str, list[str]]:
        deployment = f"deployment/{self.spec.name}"
        return {
            "apply": [*self.kubectl, "apply", "-f", str(self.manifest)],
            "rollout": [*self.kubectl, "rollout", "status", deployment, f"--timeout={self.ready_timeout_s:g}s"],
            "forward": [*self.kubectl, "port-forward", deployment, f"{self.port}:{self.container_port}"],
            "logs": [*self.kubectl, "logs", deployment, "--tail", "8"],
            "delete": [*self.kubectl, "delete", deployment, "--wait=true", "--timeout=300s"],
        }

    def start(self) -> None:
        self.manifest.write_text(yaml.safe_dump_all(self.rendered(), sort_keys=False), encoding="utf-8")
        commands = self.commands()
        self.run(commands["apply"])
        self.run(commands["rollout"], self.ready_timeout_s + 30.0)
        with open(self.log_path, "ab") as log:
            self.forward = subprocess.Popen(
                commands["forward"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.forward is not None and self.forward.poll() is None

    def tail(self, lines: int = 8) -> str:
        return " | ".join(line for line in self.quiet(self.commands()["logs"]).splitlines() if line.strip())

    def stop(self) -> None:
        if self.forward is not None and self.forward.poll() is None:
            self.forward.send_signal(signal.SIGTERM)
            try:
                self.forward.wait(10)
            except subprocess.TimeoutExpired:
                self.forward.kill()
        self.quiet(self.commands()["delete"])
