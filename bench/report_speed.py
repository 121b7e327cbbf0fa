"""Benchmark: all report outputs from 1,000,000 per-request rows (target: < 30 s, < 2 GB RSS), and the HTML
report in a browser (target: under 20 MB, open in under 5 s).

    .venv/bin/python -m bench.report_speed [--rows 1000000] [--gaps 16] [--no-browser]

Writes a synthetic ``_requests.csv`` (vectorised), then times ``python -m reports`` in a
child process and reads its peak RSS. Each row carries ``--gaps`` ITL values. Then opens the
report in Chromium (Playwright), offline, and times it until its last chart (the request
timeline) is drawn.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def synthetic_rows(n: int, gaps: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ttft = rng.lognormal(np.log(0.15), 0.8, n)
    out = rng.integers(gaps + 1, 512, n)
    tpot = rng.normal(0.041, 0.004, n).clip(0.02)
    e2e = ttft + tpot * (out - 1)
    prompt = np.full(n, 2048)
    cached = np.where(rng.random(n) < 0.7, 1536, 0)
    itl_block = np.round(rng.normal(0.041, 0.004, (min(n, 4096), gaps)).clip(0.0), 6)
    itl_text = np.array([" ".join(f"{g:.6f}" for g in row) for row in itl_block], dtype=object)
    return pd.DataFrame(
        {
            "request_id": [f"chatcmpl-{i:x}" for i in range(n)],
            "start_time": 1.8e9 + np.sort(rng.uniform(0, 3600, n)),
            "endpoint": "chat",
            "status": 200,
            "success": "true",
            "error": "",
            "ttft_s": ttft,
            "tpot_s": tpot,
            "e2e_s": e2e,
            "decode_tps": 1 / tpot,
            "prompt_tokens": prompt,
            "cached_tokens": cached,
            "output_tokens": out,
            "usage_source": "server",
            "finish_reason": "length",
            "itl_s": itl_text[np.arange(n) % len(itl_text)],
            "worker": "local",
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--gaps", type=int, default=16)
    ap.add_argument("--no-browser", dest="browser", action="store_false", help="skip opening the HTML report")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "bench")
        t = time.perf_counter()
        synthetic_rows(args.rows, args.gaps).to_csv(f"{prefix}_requests.csv", index=False)
        size_mb = os.path.getsize(f"{prefix}_requests.csv") / 1e6
        print(f"wrote {args.rows:,} rows ({size_mb:,.0f} MB) in {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "reports", prefix], cwd=ROOT, capture_output=True, text=True)
        elapsed = time.perf_counter() - t
        if proc.returncode != 0:
            sys.exit(f"report failed: {proc.stderr.strip()}")
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        outputs = sorted(f for f in os.listdir(tmp) if not f.endswith("_requests.csv"))
        result = {
            "rows": args.rows,
            "itl_gaps_per_row": args.gaps,
            "csv_mb": round(size_mb),
            "report_seconds": round(elapsed, 1),
            "peak_rss_mb": round(peak_mb),
            "html_mb": round(os.path.getsize(f"{prefix}_report.html") / 1e6, 1),
            "outputs": outputs,
        }
        if args.browser:
            result["browser_open_seconds"] = round(open_in_browser(f"{prefix}_report.html"), 2)
        print(json.dumps(result, indent=2))


def open_in_browser(path: str) -> float:
    """Seconds from opening the page (offline) until its request timeline is drawn, in headless Chromium."""
    import shutil

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
        t = time.perf_counter()
        page.goto(f"file://{os.path.abspath(path)}")
        page.wait_for_selector("#chart-timeline .nsewdrag", timeout=60_000)
        elapsed = time.perf_counter() - t
        browser.close()
    return elapsed


if __name__ == "__main__":
    main()
