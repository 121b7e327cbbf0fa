"""The LLM tab in Locust's web UI, driven in a real browser (Playwright + Debian's chromium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.procs import ROOT, read_rows, start_locust, start_master, terminate_all, web_port

KEY = "sk-ui-secret-000111222333"
ARTIFACTS = ROOT / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (scripts/test.sh installs it with apt-get)")
        pytest.skip("chromium is not installed")
    return path


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            # it answers
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def start_from_form(p, exe: str, base: str, users: int, custom: dict[str, str] | None = None):
    """Open the web UI in Chromium, fill the start form (and its custom parameters), start the test."""
    browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(base + "/")
    page.locator("input[name='userCount']").fill(str(users))
    page.locator("input[name='spawnRate']").fill(str(users))
    if custom:
        page.get_by_role("button", name="Custom parameters").click()
        for name, value in custom.items():
            page.locator(f"input[name='{name}']").fill(value)
    page.get_by_role("button", name=re.compile("start", re.I)).click()
    return browser, page


def llm_tab_row(page, label: str):
    """The LLM tab's row of one figure, once it shows."""
    page.get_by_role("tab", name="LLM", exact=True).click()
    row = page.get_by_role("row").filter(has_text=label)
    row.wait_for(timeout=20_000)
    return row


@pytest.fixture
def web_locust(emulator_factory, tmp_path):
    started = []

    def start(*extra: str):
        emu = emulator_factory("--step-ms", "20", "--api-key", KEY)
        proc, out = start_locust(
            "--web-host",
            "127.0.0.1",
            "--web-port",
            "0",
            "-H",
            emu.url,
            "--max-tokens",
            "64",
            "--input-tokens",
            "128",
            "--csv",
            str(tmp_path / "ui"),
            "--metrics-interval",
            "1",
            *extra,
            env={"OPENAI_API_KEY": KEY},
        )
        started.append((proc, out))
        return emu, web_port(out), proc, out

    yield start
    for proc, out in started:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        out.join()
        assert "Traceback" not in out.text, out.text[-3000:]


@pytest.mark.browser
@pytest.mark.timeout(180)
def test_llm_tab_shows_live_figures_in_a_real_browser(web_locust, tmp_path):
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    port = web_locust()[1]
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser, page = start_from_form(p, exe, base, users=8)
        row = llm_tab_row(page, "Completed requests")

        def completed() -> int:
            text = row.inner_text()
            m = re.search(r"Completed requests\s+(\d+)", text)
            return int(m.group(1)) if m else -1

        deadline = time.monotonic() + 30
        first = completed()
        while first <= 0 and time.monotonic() < deadline:
            time.sleep(0.5)
            first = completed()
        assert first > 0, page.content()[:2000]
        ttft = page.get_by_role("row").filter(has_text="TTFT median (ms)").inner_text()
        assert re.search(r"TTFT median \(ms\)\s+\d+\.\d", ttft), ttft
        time.sleep(4)
        # the figures update live
        assert completed() > first
        # the server's own TTFT, from its /metrics
        gap = llm_tab_row(page, "TTFT: client - server (ms)")
        deadline = time.monotonic() + 30
        while not re.search(r"server \(ms\)\s+-?\d+\.\d\d", gap.inner_text()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert re.search(r"server \(ms\)\s+-?\d+\.\d\d", gap.inner_text()), gap.inner_text()
        page.screenshot(path=str(ARTIFACTS / "web_ui_llm_tab.png"), full_page=True)
        # a row per model: here the one the server serves
        page.get_by_role("tab", name="LLM by model").click()
        model_row = page.get_by_role("row").filter(has_text="emulated-llama")
        model_row.wait_for(timeout=20_000)
        assert re.search(r"emulated-llama\s+\d+\s+\d+\s+\d+\.\d\d\s+", model_row.inner_text()), model_row.inner_text()
        page.screenshot(path=str(ARTIFACTS / "web_ui_llm_models_tab.png"))
        html = page.content()
        assert KEY not in html
        page.goto(base + "/llm")
        page.wait_for_function("document.getElementById('status').textContent.includes('running')", timeout=15_000)
        page.screenshot(path=str(ARTIFACTS / "web_ui_llm_charts.png"), full_page=True)
        assert "Time to first token" in page.content()
        stats = json.loads(urllib.request.urlopen(base + "/llm/stats", timeout=5).read())
        cur = stats["current"]
        assert cur["completed"] > 0 and cur["median_ttft_ms"] > 0
        # the old key, answered for one release
        assert cur["ttft_p50_ms"] == cur["median_ttft_ms"]
        assert stats["current"]["in_flight"] >= 0 and len(stats["history"]) >= 2
        for path in ("/", "/llm/stats", "/llm", "/stats/requests"):
            assert KEY not in urllib.request.urlopen(base + path, timeout=5).read().decode()
        csv_text = urllib.request.urlopen(base + "/llm/requests.csv", timeout=10).read().decode()
        assert csv_text.startswith("request_id,") and csv_text.count("\n") > 1
        report = urllib.request.urlopen(base + "/llm/report.html", timeout=120).read().decode()
        assert "data:image/png;base64," in report and KEY not in report
        browser.close()


@pytest.mark.timeout(120)
def test_base_path_and_login_protect_the_llm_routes(emulator_factory, tmp_path):
    import http.cookiejar
    import urllib.parse

    emu = emulator_factory("--step-ms", "20")
    creds = {"LOCUST_WEB_USERNAME": "operator", "LOCUST_WEB_PASSWORD": "pa55-word"}
    proc, out = start_locust(
        "--web-host",
        "127.0.0.1",
        "--web-port",
        "0",
        "-H",
        emu.url,
        "--web-base-path",
        "/locust",
        "--web-login",
        "--csv",
        str(tmp_path / "wl"),
        env=creds,
    )
    try:
        port = web_port(out)
        base = f"http://127.0.0.1:{port}/locust"
        wait_http(base + "/")
        anonymous = urllib.request.build_opener()
        for path in ("/llm/stats", "/llm", "/llm/requests.csv"):
            # redirected to the login page
            body = anonymous.open(base + path, timeout=5).read().decode()
            assert "median_ttft_ms" not in body and "Time to first token" not in body, path
        jar = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        wrong = urllib.parse.urlencode({"username": "operator", "password": "nope"}).encode()
        browser.open(base + "/llm/login_submit", data=wrong, timeout=5)
        assert "median_ttft_ms" not in browser.open(base + "/llm/stats", timeout=5).read().decode()
        good = urllib.parse.urlencode({"username": "operator", "password": "pa55-word"}).encode()
        browser.open(base + "/llm/login_submit", data=good, timeout=5)
        stats = json.loads(browser.open(base + "/llm/stats", timeout=5).read())
        assert "current" in stats and "median_ttft_ms" in stats["current"]
    finally:
        proc.terminate()
        proc.wait(30)
        out.join()
    assert "Traceback" not in out.text, out.text[-3000:]


def test_web_login_without_credentials_is_a_clear_error():
    from tests.e2e.test_bad_input import assert_one_clear_error
    from tests.procs import run_locust

    run = run_locust(
        "--web-host", "127.0.0.1", "--web-port", "0", "--web-login", "-H", "http://127.0.0.1:1", timeout=60
    )
    assert_one_clear_error(run, "--web-login needs LOCUST_WEB_USERNAME and LOCUST_WEB_PASSWORD")


@pytest.mark.timeout(120)
def test_llm_stats_at_a_distributed_master(emulator_factory, tmp_path):
    emu = emulator_factory("--step-ms", "20", "--lora-modules", "sql-lora")
    master, mout, master_port = start_master(
        "--expect-workers",
        "2",
        "--web-host",
        "127.0.0.1",
        "--web-port",
        "0",
        "--autostart",
        "-u",
        "8",
        "-r",
        "8",
        "-H",
        emu.url,
        "--max-tokens",
        "32",
        "--input-tokens",
        "64",
        "--metrics-interval",
        "1",
        "--model",
        "emulated-llama,sql-lora",
    )
    workers = [
        start_locust("--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port)) for _ in range(2)
    ]
    try:
        web = web_port(mout)
        url = f"http://127.0.0.1:{web}/llm/stats"
        wait_http(url)
        deadline = time.monotonic() + 40
        stats: dict = {"current": {}}
        while time.monotonic() < deadline:
            stats = json.loads(urllib.request.urlopen(url, timeout=5).read())
            cur = stats["current"]
            if cur.get("completed", 0) > 10 and cur.get("in_flight", 0) > 0:
                break
            time.sleep(1)
        # rows and in-flight counts from both workers reach the master's figures
        cur, models = stats["current"], stats["models"]
        assert cur["completed"] > 10 and cur["in_flight"] > 0 and cur["median_ttft_ms"] > 0, cur
        # the master scrapes the server
        assert cur["num_requests_running"] is not None
        # and each model's: the rows say which model they asked for (the same snapshot: the counts add up)
        assert set(models) == {"emulated-llama", "sql-lora"}, models
        assert sum(m["completed"] for m in models.values()) == cur["completed"]
        assert all(m["completed"] > 0 and m["median_ttft_ms"] > 0 for m in models.values()), models
    finally:
        terminate_all([(master, mout), *workers])
    assert "Traceback" not in mout.text, mout.text[-3000:]


@pytest.mark.browser
def test_an_open_loop_started_from_the_form_shows_its_rates_live(web_locust, tmp_path):
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    emu, port, _proc, _out = web_locust()
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/")
    with sync_playwright() as p:
        browser, page = start_from_form(p, exe, base, users=1, custom={"requestRate": "20", "burstiness": "inf"})
        row = llm_tab_row(page, "Open loop: achieved req/s")

        def achieved() -> float:
            m = re.search(r"achieved req/s\s+(\d+\.\d+)", row.inner_text())
            return float(m.group(1)) if m else -1.0

        deadline = time.monotonic() + 40
        # 20 req/s over a 10 s window fills in ~10 s
        while achieved() < 10 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert achieved() >= 10, row.inner_text()
        page.screenshot(path=str(ARTIFACTS / "web_ui_open_loop.png"), full_page=True)
        stats = json.loads(urllib.request.urlopen(base + "/llm/stats", timeout=5).read())["current"]
        assert stats["requested_rate"] > 0 and stats["queued"] == 0
        browser.close()
    # the form's rate and burstiness reached the schedule (evenly spaced at 20 req/s), and each request
    # reached the server once due (the emulator logs the requests that finished)
    rows = sorted(read_rows(tmp_path / "ui"), key=lambda r: float(r["scheduled_time"]))
    due = [float(r["scheduled_time"]) for r in rows]
    # (rows are written as requests finish: those still in flight are not in the file yet)
    steps = [(d - due[0]) / 0.05 for d in due]
    assert len(due) > 40 and max(abs(k - round(k)) for k in steps) < 1e-3, steps[:10]
    truth = {t["id"]: t["received_wall"] for t in emu.truth()}
    # sent once due (by design), so received after; a busy machine may stall a send now and then: the median
    late = sorted(truth[r["request_id"]] - float(r["scheduled_time"]) for r in rows if r["request_id"] in truth)
    assert len(late) > 20 and late[0] > 0 and late[len(late) // 2] < 0.005, (late[0], late[len(late) // 2])


def test_a_bad_value_in_the_start_form_is_one_line_and_the_users_stop_quietly(web_locust):
    emu, port, _proc, out = web_locust()
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/")
    form = urllib.parse.urlencode({"user_count": "2", "spawn_rate": "2", "host": emu.url, "request_rate": "fast"})
    with urllib.request.urlopen(base + "/swarm", data=form.encode(), timeout=10) as r:
        assert r.status == 200
    deadline = time.monotonic() + 20
    while "cannot start the test" not in out.text and time.monotonic() < deadline:
        time.sleep(0.1)
    # the users spawned meanwhile have run their first task
    time.sleep(1.0)
    assert "cannot start the test: --request-rate: expected a number, got 'fast'" in out.text, out.text[-2000:]
    assert "Traceback" not in out.text and "prompts are prepared" not in out.text, out.text[-3000:]
    assert "/v1/chat/completions" not in emu.stats()["by_path"]
