"""The docker files validate without a Docker engine: compose spec schema and hadolint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import ROOT

BIN = Path(sys.executable).parent
COMPOSE_FILES = sorted((ROOT / "docker").glob("*.compose.yml"))


def check_compose(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_follows_the_compose_spec(path):
    proc = check_compose(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_validator_rejects_a_broken_compose_file(tmp_path):
    bad = tmp_path / "bad.compose.yml"
    bad.write_text("services:\n  vllm:\n    image: x\n    ipc_mode: host\n    ports: 8000\n")
    assert check_compose(bad).returncode != 0


def test_compose_files_carry_the_seed_settings():
    rocm = (ROOT / "docker" / "vllm-rocm.compose.yml").read_text()
    for needle in (
        "rocm/vllm-dev:nightly",
        "/dev/kfd",
        "/dev/dri",
        "ipc: host",
        "SYS_PTRACE",
        "seccomp:unconfined",
        "NCCL_MIN_NCHANNELS",
        "--enable-prefix-caching",
        "--enable-chunked-prefill",
        "--enable-prompt-tokens-details",
        "${TP_SIZE",
        "${MODEL_PATH",
    ):
        assert needle in rocm, needle
    nvidia = (ROOT / "docker" / "vllm-nvidia.compose.yml").read_text()
    assert "vllm/vllm-openai" in nvidia and "--enable-prompt-tokens-details" in nvidia and "${TP_SIZE" in nvidia
    cluster = (ROOT / "docker" / "locust.compose.yml").read_text()
    assert "8089:8089" in cluster and "--master-host" in cluster and "emulator" in cluster


def test_dockerfile_passes_hadolint_and_runs_as_non_root():
    dockerfile = ROOT / "docker" / "Dockerfile"
    proc = subprocess.run([str(BIN / "hadolint"), str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert any(
        line.startswith("USER ") and line.split()[1] not in ("root", "0")
        for line in dockerfile.read_text().splitlines()
    )


def test_hadolint_rejects_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN cd /app && pip install locust\n")
    proc = subprocess.run([str(BIN / "hadolint"), str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0


def test_the_image_copies_every_package_the_suite_imports():
    """The image runs locustfile.py, the emulator, the reports and the examples: each first-party
    package they import must be copied in (a new package is easy to forget here)."""
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    # the sources
    copied = {line.split()[-2] for line in dockerfile.splitlines() if line.startswith("COPY ")}
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench", "tools"}
    assert packages | {"examples", "locustfile.py"} <= copied, sorted(packages - copied)
