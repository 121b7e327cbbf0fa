"""Benchmark: what the Prometheus figures cost the process that sends the load.

    .venv/bin/python -m bench.exporter [--requests 20000] [--gaps 512] [--models 1]

Times ``Exporter.observe`` of a finished request's row (``observe_record_us``: every request of a local
run or of a worker with ``--metrics-port``; the row is built for the CSV anyway), of a row a worker
shipped, decoded at the master (``observe_row_us``: ``Row.from_fields`` included), and one scrape, and
prints them as JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from prometheus_client import generate_latest

from llmclient.measure import RequestRecord
from llmclient.schema import Row
from users.observe.prometheus_export import FAMILIES, Exporter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--gaps", type=int, default=512, help="inter-token gaps per request (output tokens - 1)")
    parser.add_argument("--models", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    records = []
    for i in range(min(args.requests, 1000)):
        itl = rng.normal(0.04, 0.004, args.gaps).clip(0).tolist()
        records.append(
            RequestRecord(
                start_time=1.8e9 + i,
                success=True,
                ttft_s=float(rng.lognormal(-2, 0.5)),
                itl_s=itl,
                e2e_s=0.2 + sum(itl),
                prompt_tokens=2048,
                cached_tokens=1024,
                output_tokens=args.gaps + 1,
            )
        )
    models = [f"model-{m}" for m in range(args.models)]
    gauges = {f: (lambda: 1.0) for f in FAMILIES if f.kind == "gauge"}
    exporter = Exporter(lambda: models[int(time.perf_counter_ns()) % len(models)], gauges)
    local = [Row.of(r, "chat", "local") for r in records]
    start = time.perf_counter()
    for i in range(args.requests):
        exporter.observe(local[i % len(local)])
    per_record = (time.perf_counter() - start) / args.requests
    rows = [row.fields() for row in local]
    start = time.perf_counter()
    for i in range(args.requests):
        exporter.observe(Row.from_fields(rows[i % len(rows)]))
    per_row = (time.perf_counter() - start) / args.requests
    start = time.perf_counter()
    page = generate_latest(exporter.registry)
    scrape = time.perf_counter() - start
    figures = {"requests": args.requests, "gaps": args.gaps, "models": args.models}
    figures.update(observe_record_us=round(per_record * 1e6, 2), observe_row_us=round(per_row * 1e6, 2))
    print(json.dumps({**figures, "scrape_ms": round(scrape * 1e3, 3), "page_bytes": len(page)}))


if __name__ == "__main__":
    main()
