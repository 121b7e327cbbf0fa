"""``python -m tuning GRID.yaml --out DIR [--resume]``: the server's settings swept (tuning/grid.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmclient.errors import one_line_errors
from tuning.grid import GridError, load_grid
from tuning.loop import run_grid
from tuning.results import best_sentence


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuning", description=__doc__)
    parser.add_argument("grid", metavar="GRID.yaml", help="the grid file: server, url, settings, workload ...")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="where points/NAME/, tuning.csv and tuning_summary.json go"
    )
    parser.add_argument("--resume", action="store_true", help="keep the points whose results are complete")
    one_line_errors(parser)
    args = parser.parse_args(argv)
    try:
        grid = load_grid(args.grid)
        out = Path(args.out)
        (out / "points").mkdir(parents=True, exist_ok=True)
    except GridError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: --out {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        summary = run_grid(grid, out, args.resume, lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print("stopped: the points done so far are in tuning.csv (--resume goes on from them)", file=sys.stderr)
        return 130
    failed = [p["name"] for p in summary["points"] if p["status"] != "ok"]
    best = summary["best"]
    if best:
        print(best_sentence(best))
    print(f"results: {out / 'tuning_summary.json'}, {out / 'tuning.csv'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
