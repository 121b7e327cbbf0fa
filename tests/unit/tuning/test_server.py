"""A point's server: its settings checked against what it publishes, and one that never answers given up on."""

from __future__ import annotations

import os
import signal

import pytest

from tuning.server import LocalServer, ServerFailed, free_port, interrupt_after, mismatches


def test_a_server_that_runs_other_settings_is_caught_where_it_publishes_them():
    published = {"enable_prefix_caching": "False", "block_size": "16", "gpu_memory_utilization": "0.9"}
    point = {"enable_prefix_caching": True, "block_size": 16, "max_num_seqs": 8, "gpu_memory_utilization": 0.9}
    assert mismatches(point, published) == ["enable_prefix_caching: the point asks true, the server runs False"]
    # max_num_seqs: not published
    assert mismatches({**point, "enable_prefix_caching": False}, published) == []


def test_a_server_that_never_answers_is_given_up_on_and_stopped(tmp_path):
    server = LocalServer("sleep 30", str(tmp_path / "server.log"))
    server.start()
    log = tmp_path / "server.log"
    with pytest.raises(ServerFailed, match=rf"^not ready after 0.5 s \(GET /v1/models; its log: {log}\)"):
        server.wait_ready(f"http://127.0.0.1:{free_port('127.0.0.1')}", 0.5)
    server.stop()
    assert not server.alive()


def test_a_ctrl_c_while_a_process_starts_waits_until_its_owner_knows_it():
    started = []
    with pytest.raises(KeyboardInterrupt), interrupt_after():
        # in the middle of starting a process
        os.kill(os.getpid(), signal.SIGINT)
        # the block finishes first
        started.append("the process, known")
    assert started == ["the process, known"]
    # restored
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
