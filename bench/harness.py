"""The benchmarks' one set-up: the emulator pinned to one core, a headless ``locust`` to the other,
and the emulator's per-request log as the truth."""

from __future__ import annotations

import json
import os
import subprocess
import threading

from bench.client_overhead import LOCUST, PY, ROOT, pinned

FAST_EMULATOR = ["--step-ms-per-seq", "0", "--prefill-ms-per-token", "0", "--max-num-seqs", "4096",
                 "--max-num-batched-tokens", "10000000", "--eos-prob", "0"]  # fmt: skip


def run_pinned(tag: str, tmp: str, emulator_args: list[str], locust_args: list[str],
               timeout: float) -> tuple[str, dict[str, dict]]:  # fmt: skip
    """Run ``locust`` (headless, CSVs under ``tmp/tag``) against a fresh emulator; the CSV prefix and the
    emulator's log by request id. Exits with the client's output if it failed."""
    log = os.path.join(tmp, f"emu-{tag}.jsonl")
    emu = subprocess.Popen([PY, "-m", "emulator", "--port", "0", "--request-log", log, *emulator_args], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=pinned(1))  # fmt: skip
    prefix = os.path.join(tmp, tag)
    try:
        assert emu.stdout is not None
        url = emu.stdout.readline().split()[3]
        threading.Thread(target=emu.stdout.read, daemon=True).start()
        client = subprocess.run(
            [LOCUST, "-f", os.path.join(ROOT, "locustfile.py"), "--headless", "-u", "1", "-r", "1", "-H", url,
             "--metrics-interval", "0", "--csv", prefix, "--only-summary", "--loglevel", "WARNING", *locust_args],
            cwd=ROOT, capture_output=True, text=True, preexec_fn=pinned(0), stdin=subprocess.DEVNULL, timeout=timeout,
        )  # fmt: skip
    finally:
        emu.terminate()
        emu.wait(30)
    if client.returncode != 0:
        raise SystemExit(f"locust failed at {tag}: {client.stdout[-2000:]}{client.stderr[-2000:]}")
    truth = {}
    with open(log) as f:
        for line in f:
            t = json.loads(line)
            truth[t["id"]] = t
    return prefix, truth
