"""--repeat: each repetition's figures, and the headline figures with their intervals across repetitions."""

from __future__ import annotations

import pytest
from scipy import stats

from reports.load import load_requests
from reports.repeats import repeats_summary
from tests.unit.reports.test_load import HEADER, ROW

# each repetition's TTFT: the server drifted between them
TTFT_S = {1: 0.100, 2: 0.110, 3: 0.126}


def repeated_rows(tmp_path) -> str:
    lines = []
    for repeat, ttft in TTFT_S.items():
        for i in range(50):
            line = ROW.format(i=len(lines), t=1.7e9 + 100 * repeat + i / 10).replace("0.1,", f"{ttft},", 1)
            lines.append(line.rstrip("\n") + f",{repeat},{repeat}\n")
    path = tmp_path / "r_requests.csv"
    path.write_text(HEADER.rstrip("\n") + ",level,repeat\n" + "".join(lines))
    return str(path)


def test_a_repeated_load_reports_the_mean_of_its_repetitions_with_a_t_interval(tmp_path):
    rows = load_requests(repeated_rows(tmp_path))
    out = repeats_summary(rows, None, 0.95, one_load=True)
    assert [r["repeat"] for r in out["repeats"]] == [1, 2, 3]
    assert [round(r["median_ttft_ms"], 6) for r in out["repeats"]] == [100.0, 110.0, 126.0]
    medians = [100.0, 110.0, 126.0]
    assert out["median_ttft_ms"] == pytest.approx(sum(medians) / 3)
    truth = stats.ttest_1samp(medians, 0.0).confidence_interval(0.95)
    assert out["median_ttft_ms_ci"] == pytest.approx([truth.low, truth.high])
    assert out["ci_method"].startswith("across 3 repetitions")
    # repetitions of different loads (a sweep's levels) keep their figures, but no interval across them
    assert "median_ttft_ms" not in repeats_summary(rows, None, 0.95, one_load=False)
