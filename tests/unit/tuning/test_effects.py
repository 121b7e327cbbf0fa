"""What a setting does (tuning/effects.py): each value against the first over the points that differ in it
alone, the geometric mean of their ratios and Student's t over their logarithms."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from tuning.effects import setting_effects
from tuning.grid import load_grid
from tuning.results import PointResult

GRID = """
server: {command: "serve --port {port} --max-num-seqs {max_num_seqs} {enable_prefix_caching}"}
url: http://127.0.0.1:8011
settings: {max_num_seqs: [4, 8], enable_prefix_caching: [false, true]}
workload: ["-u", "8", "-n", "40"]
"""


def test_pairs_and_repetitions_give_a_geometric_mean_with_its_t_interval(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(GRID)
    grid = load_grid(str(path))
    ttft = {(4, False): [100.0, 110.0], (4, True): [40.0, 50.0], (8, False): [200.0, 190.0], (8, True): [60.0, 70.0]}
    results = [
        PointResult(
            "p",
            point,
            repeats=[
                {"repeat": k + 1, "mean_ttft_ms": ttft[point["max_num_seqs"], point["enable_prefix_caching"]][k]}
                for k in range(2)
            ],
        )
        for point in grid.points
    ]
    results.append(PointResult("bad", {"max_num_seqs": 16, "enable_prefix_caching": True}, status="failed"))
    (effect,) = setting_effects(grid, results, tmp_path)["enable_prefix_caching"]
    # repetition k of "true" over repetition k of "false"
    ratios = [40 / 100, 50 / 110, 60 / 200, 70 / 190]
    logs = [math.log(r) for r in ratios]
    mean, sd = sum(logs) / 4, stats.tstd(logs)
    half = stats.t.ppf(0.975, 3) * sd / 2
    assert effect["from"] is False and effect["to"] is True and effect["pairs"] == 2
    assert effect["mean_ttft_ms"] == pytest.approx(math.exp(mean))
    assert effect["mean_ttft_ms_ci"] == pytest.approx([math.exp(mean - half), math.exp(mean + half)])
    assert effect["ci_method"].startswith("across 4 pairs of runs")
    # a figure the runs lack has no ratio
    assert "completed" not in effect
