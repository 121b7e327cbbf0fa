"""``python -m reports compare BASE NEW``: a planted regression is found, a run against itself changes nothing,
and vLLM's own result files are read."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest

from reports.__main__ import main
from tests.unit.reports.test_load import HEADER, ROW


def run_files(tmp_path, name: str, slower: float, seed: int) -> str:
    """400 requests, 8 per second, lognormal TTFT (median 100 ms) and E2E times ``slower``."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(400):
        ttft = rng.lognormal(np.log(0.1), 0.3) * slower
        e2e = ttft + rng.lognormal(np.log(1.0), 0.1) * slower
        line = ROW.format(i=i, t=1.7e9 + i / 8).replace(
            ",0.1,0.02,1.1,", f",{ttft:.6f},{(e2e - ttft) / 50:.6f},{e2e:.6f},"
        )
        lines.append(line)
    (tmp_path / f"{name}_requests.csv").write_text(HEADER + "".join(lines))
    return str(tmp_path / name)


def verdicts(out: str) -> dict[str, str]:
    return {line.split(":")[0].strip(): line.rsplit(": ", 1)[1] for line in out.splitlines() if line.startswith("  ")}


def test_a_planted_20_percent_regression_is_worse_and_exits_3(tmp_path, capsys):
    base, new = run_files(tmp_path, "base", 1.0, 1), run_files(tmp_path, "new", 1.2, 2)
    assert main(["compare", base, new, "--max-regression", "5%"]) == 3
    out = capsys.readouterr().out
    found = verdicts(out)
    assert all(found[f"{stat}_ttft_ms"] == "worse" for stat in ("mean", "median", "p90"))
    assert found["mean_e2el_ms"] == found["median_e2el_ms"] == "worse"
    # the same rate of requests
    assert found["request_throughput"] == "no clear change"
    assert "regression beyond 5%: mean_ttft_ms" in out
    # worse, but not by half
    assert main(["compare", base, new, "--max-regression", "50%"]) == 0


def test_a_run_against_itself_has_no_clear_change(tmp_path, capsys):
    base = run_files(tmp_path, "base", 1.0, 1)
    assert main(["compare", base, base]) == 0
    assert set(verdicts(capsys.readouterr().out).values()) == {"no clear change"}


def vllm_result(path, slower: float, seed: int) -> str:
    """A ``vllm bench serve --save-result --save-detailed`` file (its keys, serve.py)."""
    rng = np.random.default_rng(seed)
    ttfts = list(rng.lognormal(np.log(0.1), 0.3, 300) * slower)
    itls = [list(rng.normal(0.02, 0.002, 49) * slower) for _ in ttfts]
    data = {
        "duration": 40.0,
        "completed": 300,
        "failed": 0,
        "request_throughput": 7.5,
        "output_throughput": 375.0,
        "mean_ttft_ms": 1e3 * float(np.mean(ttfts)),
        "input_lens": [1024] * 300,
        "output_lens": [50] * 300,
        "ttfts": ttfts,
        "itls": itls,
        "latencies": [t + sum(g) for t, g in zip(ttfts, itls, strict=True)],
        "start_times": [i / 7.5 for i in range(300)],
        "generated_texts": [""] * 300,
        "errors": [""] * 300,
    }
    path.write_text(json.dumps(data))
    return str(path)


def test_vllm_bench_serve_result_files_are_compared_too(tmp_path, capsys):
    base = vllm_result(tmp_path / "base.json", 1.0, 3)
    assert main(["compare", base, base]) == 0
    assert set(verdicts(capsys.readouterr().out).values()) == {"no clear change"}
    new = vllm_result(tmp_path / "new.json", 1.25, 4)
    assert main(["compare", base, new]) == 3
    found = verdicts(capsys.readouterr().out)
    assert found["median_ttft_ms"] == found["median_itl_ms"] == found["mean_tpot_ms"] == "worse"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-regression", "lots"], "expected a share such as 5% or 0.05, got 'lots'"),
        (["--ci-level", "95"], "--ci-level must be between 0 and 1"),
    ],
)
def test_bad_compare_input_is_one_line(tmp_path, capsys, args, message):
    base = run_files(tmp_path, "base", 1.0, 1)
    with pytest.raises(SystemExit) if args[0] == "--max-regression" else contextlib.nullcontext():
        assert main(["compare", base, base, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_vllm_file_without_per_request_figures_is_one_line(tmp_path, capsys):
    summary_only = tmp_path / "summary.json"
    summary_only.write_text(json.dumps({"duration": 1.0, "completed": 3}))
    assert main(["compare", str(summary_only), str(summary_only)]) == 2
    assert "--save-detailed" in capsys.readouterr().err


def test_runs_of_different_loads_are_named_as_such(tmp_path, capsys):
    base, new = run_files(tmp_path, "base", 1.0, 1), run_files(tmp_path, "new", 1.0, 2)
    (tmp_path / "base_config.json").write_text(json.dumps({"users": 128, "num_requests": 500, "max_tokens": 512}))
    (tmp_path / "new_config.json").write_text(json.dumps({"users": 64, "num_requests": 500, "max_tokens": 256}))
    main(["compare", base, new])
    out = capsys.readouterr().out
    assert "the runs differ in their load, not only in the server: users: 128 -> 64; max_tokens: 512 -> 256" in out
    main(["compare", base, base])
    assert "differ in their load" not in capsys.readouterr().out
