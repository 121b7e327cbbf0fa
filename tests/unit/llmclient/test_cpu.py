"""The client's CPU guard: shares of a core from scripted readings, the bound verdict, and a real reading."""

from __future__ import annotations

import time

import pytest

from llmclient.cpu import CpuGuard, read_schedstat, verdict


class Script:
    """A clock and a CPU counter that advance as the test says."""

    def __init__(self) -> None:
        self.now = 0.0
        self.used = 0.0

    def advance(self, seconds: float, share: float) -> None:
        self.now += seconds
        self.used += seconds * share


def test_shares_peaks_and_bound_seconds_from_scripted_readings():
    s = Script()
    guard = CpuGuard(read=lambda: s.used, clock=lambda: s.now, cpu_time=lambda: s.used / 2)
    for share in (0.2, 0.95, 0.5, 1.0):
        s.advance(1.0, share)
        assert guard.sample() == pytest.approx(share)
    assert guard.seconds == 4 and guard.bound_seconds == 2 and guard.max_share == pytest.approx(1.0)
    # the peak since the last scrape
    assert guard.take_peak() == pytest.approx(1.0) and guard.take_peak() == 0.0
    # no time passed
    assert guard.sample() is None
    assert guard.report() == {
        "seconds": 4.0,
        "bound_seconds": 2.0,
        "max_share": pytest.approx(1.0),
        "cpu_seconds": pytest.approx(2.65 / 2),
    }


def test_the_busiest_process_decides_and_ten_percent_of_the_run_is_the_line():
    # 10%: not more than a tenth
    calm = {"seconds": 100.0, "bound_seconds": 10.0, "max_share": 0.97}
    busy = {"seconds": 100.0, "bound_seconds": 11.0, "max_share": 0.99}
    assert verdict([calm]) == {"client_cpu_max_share": 0.97, "client_cpu_bound": False}
    assert verdict([calm, busy]) == {"client_cpu_max_share": 0.99, "client_cpu_bound": True}
    assert verdict([{"seconds": 0.0, "bound_seconds": 0.0, "max_share": 0.0}])["client_cpu_bound"] is False


def test_the_schedulers_statistics_count_this_process_busy():
    before = read_schedstat()
    end = time.perf_counter() + 0.05
    while time.perf_counter() < end:
        pass
    # on the CPU (or waiting for it) for the whole loop
    assert read_schedstat() - before >= 0.04


def test_a_failed_calibration_is_one_warning_and_the_run_goes_on(monkeypatch, tmp_path, caplog):
    from types import SimpleNamespace

    from users.calibration.floor import floor
    from users.runtime import roles
    from users.settings.settings import Settings

    with pytest.raises(RuntimeError, match="the calibration run finished no request"):
        floor([], {}, 1.0, 4, 128, 16)

    def failing(*_a: object, **_kw: object) -> dict:
        raise RuntimeError("the calibration's emulator did not start: nothing")

    monkeypatch.setattr(roles, "calibrate", failing)
    settings = Settings.from_options(SimpleNamespace(num_users=4, input_tokens=128, max_tokens=16))
    with caplog.at_level("WARNING"):
        roles.run_calibration(settings, str(tmp_path / "run"))
    assert "the calibration failed, the run goes on without it" in caplog.text
    assert not (tmp_path / "run_calibration.json").exists()
