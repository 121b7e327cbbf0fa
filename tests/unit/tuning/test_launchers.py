"""The compose and Kubernetes launchers, offline: the shipped seed grid renders a compose override and a
manifest that validate and carry the point's flags in place of the base's; the commands the loop would run;
a missing tool is the point's one-line failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.procs import ROOT
from tests.unit.docker.test_kubernetes import KUBERNETES_VERSION
from tuning.grid import GridError, load_grid, with_settings
from tuning.launchers import ComposeServer, KubernetesServer, launcher_for
from tuning.server import ServerFailed

SEED_GRID = ROOT / "docker" / "tuning" / "seed.compose.yaml"
POINT = {"enable_prefix_caching": False, "max_num_batched_tokens": 8192, "VLLM_CPU_KVCACHE_SPACE": 40}


def test_a_points_flags_replace_the_bases_in_every_spelling():
    base = ["--model", "m", "--enable-prefix-caching", "--max-num-batched-tokens", "2048", "--max-num-seqs=4", "--x"]
    point = {"enable_prefix_caching": False, "max_num_batched_tokens": 8192, "max_num_seqs": 8, "VLLM_X": 1}
    assert with_settings(base, point) == [
        "--model",
        "m",
        "--x",
        "--no-enable-prefix-caching",
        "--max-num-batched-tokens",
        "8192",
        "--max-num-seqs",
        "8",
    ]


def test_the_seed_compose_grid_renders_an_override_that_compose_accepts(tmp_path):
    grid = load_grid(str(SEED_GRID))
    assert grid.server.kind == "compose" and len(grid.points) == 4
    server = launcher_for(grid, POINT, 8000, tmp_path)
    assert isinstance(server, ComposeServer)
    override = server.rendered()
    command = override["services"]["vllm"]["command"]
    assert "--enable-prefix-caching" not in command and "2048" not in command
    assert command[-3:] == ["--no-enable-prefix-caching", "--max-num-batched-tokens", "8192"]
    assert command[:7] == [
        "python3",
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        "/app/model",
        # the rest kept, in order
        "--tensor-parallel-size",
        "${TP_SIZE:-8}",
    ]
    assert override["services"]["vllm"]["environment"] == {"VLLM_CPU_KVCACHE_SPACE": "40"}
    # the file compose would run: the base with the override's command and environment over it
    merged = yaml.safe_load((ROOT / "docker" / "vllm-rocm.compose.yml").read_text())
    merged["services"]["vllm"].update(override["services"]["vllm"])
    (tmp_path / "merged.yml").write_text(yaml.safe_dump(merged))
    check = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(tmp_path / "merged.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    files = [
        "docker",
        "compose",
        "-f",
        "docker/vllm-rocm.compose.yml",
        "-f",
        str(tmp_path / "compose.override.yml"),
        "--env-file",
        "docker/.env",
    ]
    assert server.commands()["up"] == [*files, "up", "-d", "--force-recreate", "vllm"]
    assert server.commands()["down"] == [*files, "down", "--timeout", "30"]


def test_a_readiness_wait_asks_compose_whether_the_service_runs_every_few_seconds(tmp_path, monkeypatch):
    server = launcher_for(load_grid(str(SEED_GRID)), POINT, 8000, tmp_path)
    asked: list[list[str]] = []
    monkeypatch.setattr(server, "quiet", lambda args: asked.append(args) or "abc123\n")
    clock = iter([100.0, 100.2, 104.9, 105.0, 105.2])
    monkeypatch.setattr("tuning.launchers.time.monotonic", lambda: next(clock))
    # polled every 0.2 s: ps asked at 100 and 105 only
    assert all(server.alive() for _ in range(5))
    assert asked == [server.commands()["ps"]] * 2


def test_a_kubernetes_deployment_is_patched_validates_and_is_forwarded_to_the_urls_port(tmp_path):
    (tmp_path / "grid.yaml").write_text(
        SEED_GRID.read_text().replace(
            "  compose: docker/vllm-rocm.compose.yml\n  service: vllm\n  env_file: docker/.env\n",
            "  kubernetes: docker/kubernetes/vllm/base/vllm.yaml\n  deployment: vllm\n  namespace: llm\n",
        )
    )
    grid = load_grid(str(tmp_path / "grid.yaml"))
    server = launcher_for(grid, POINT, 18000, tmp_path)
    assert isinstance(server, KubernetesServer)
    docs = server.rendered()
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    (container,) = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["args"][-3:] == ["--no-enable-prefix-caching", "--max-num-batched-tokens", "8192"]
    assert "--enable-prefix-caching" not in container["args"] and "--tensor-parallel-size" in container["args"]
    assert {"name": "VLLM_CPU_KVCACHE_SPACE", "value": "40"} in container["env"]
    # the base's environment kept
    assert any(e["name"] == "VLLM_API_KEY" for e in container["env"])
    commands = server.commands()
    assert commands["forward"] == ["kubectl", "-n", "llm", "port-forward", "deployment/vllm", "18000:8000"]
    assert commands["rollout"] == ["kubectl", "-n", "llm", "rollout", "status", "deployment/vllm", "--timeout=1800s"]


def test_without_docker_the_point_fails_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    server = launcher_for(load_grid(str(SEED_GRID)), POINT, 8000, tmp_path)
    with pytest.raises(ServerFailed, match=r"^docker is not installed \(server.compose needs it\)$"):
        server.start()


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("{compose: docker/vllm-rocm.compose.yml, service: nope}", "has no service 'nope' (it has: vllm)"),
        ("{compose: docker/missing.yml, service: vllm}", "cannot read docker/missing.yml"),
        ("{compose: docker/vllm-nvidia.compose.yml}", "server.compose needs server.service"),
        ("{compose: docker/vllm-nvidia.compose.yml, service: vllm, deployment: x}", "server.deployment does not go"),
        ("{kubernetes: docker/kubernetes/vllm/base/vllm.yaml, deployment: web}", "has no Deployment 'web'"),
    ],
)
def test_a_bad_server_is_one_line_naming_the_grid(tmp_path, monkeypatch, server, message):
    monkeypatch.chdir(ROOT)
    text = SEED_GRID.read_text()
    start, end = text.index("server:"), text.index("url:")
    (tmp_path / "grid.yaml").write_text(text[:start] + f"server: {server}\n" + text[end:])
    with pytest.raises(GridError) as caught:
        load_grid(str(tmp_path / "grid.yaml"))
    assert str(caught.value).startswith(f"{tmp_path / 'grid.yaml'}: server.") and message in str(caught.value)
    assert "\n" not in str(caught.value)
