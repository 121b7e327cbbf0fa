"""The HTML report in a real browser (Chromium through Playwright), offline: its first screen holds the
answers, a chart answers a hover with its value, and the request timeline zooms."""

from __future__ import annotations

import pytest

from tests.e2e.test_sweep import report
from tests.e2e.test_web_ui import CHROMIUM_ARGS, chromium_path
from tests.procs import run_locust

pytestmark = pytest.mark.browser

POINT_ON = """([id, trace, index]) => {  // a trace's point, in the page's pixels
  const gd = document.getElementById(id), xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  const box = gd.querySelector('.nsewdrag').getBoundingClientRect(), data = gd._fullData[trace];
  return [box.left + xa.c2p(data.x[index]), box.top + ya.c2p(data.y[index])];
}"""
RANGE = "id => document.getElementById(id)._fullLayout.xaxis.range.slice()"


@pytest.mark.timeout(180)
def test_the_report_opens_offline_with_its_answers_first_a_hover_and_a_zoom(emulator_factory, tmp_path):
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    emu = emulator_factory("--step-ms", "5")
    prefix = tmp_path / "run"
    run = run_locust(
        "--headless",
        "-u",
        "8",
        "-r",
        "8",
        "-n",
        "120",
        "-H",
        emu.url,
        "--max-tokens",
        "16",
        "--input-tokens",
        "128",
        "--prefix-tokens",
        "96",
        "--csv",
        str(prefix),
        "--only-summary",
    )
    assert run.returncode == 0, run.output[-3000:]
    summary = report(prefix)
    page_path = tmp_path / "run_report.html"
    assert (tmp_path / "run_request_timeline.png").stat().st_size > 10_000
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        # offline: anything but the file itself is refused, and noted
        asked: list[str] = []
        page.route(
            "**/*",
            lambda r: r.continue_() if r.request.url.startswith("file:") else (asked.append(r.request.url), r.abort()),
        )
        page.goto(page_path.as_uri())
        page.wait_for_selector("#chart-timeline .nsewdrag", timeout=30_000)
        assert asked == []
        answers = page.locator("#answers")
        box = answers.bounding_box()
        # the first screen holds the answers
        assert box is not None and box["y"] + box["height"] <= 900
        text = answers.inner_text()
        assert f"{summary['completed']:,} requests completed" in text and "Time to first token: p50" in text
        assert "95% CI" in text and "Prefix cache:" in text
        page.locator("#chart-cdf").scroll_into_view_if_needed()
        # the TTFT curve's median
        x, y = page.evaluate(POINT_ON, ["chart-cdf", 0, 500])
        page.mouse.move(x, y)
        hover = page.locator("#chart-cdf .hovertext")
        hover.first.wait_for(timeout=10_000)
        assert "ms at p" in (hover.first.text_content() or "")
        page.locator("#chart-timeline").scroll_into_view_if_needed()
        before = page.evaluate(RANGE, "chart-timeline")
        drag = page.locator("#chart-timeline .nsewdrag").first.bounding_box()
        assert drag is not None
        page.mouse.move(drag["x"] + drag["width"] * 0.3, drag["y"] + drag["height"] * 0.3)
        page.mouse.down()
        page.mouse.move(drag["x"] + drag["width"] * 0.5, drag["y"] + drag["height"] * 0.6, steps=8)
        page.mouse.up()
        page.wait_for_function(
            f"id => ({RANGE})(id)[1] - ({RANGE})(id)[0] < {(before[1] - before[0]) / 2}",
            arg="chart-timeline",
            timeout=10_000,
        )
        browser.close()
