"""The client's floor on this machine: what the suite itself adds to TTFT and ITL, and how many streamed
chunks one client core keeps up with.

    .venv/bin/python -m users.calibrate [-u 128] [--input-tokens 2048] [--max-tokens 512] [--seconds 10]
                                        [--endpoint chat] [--out FILE]

or ``--calibrate`` in a run (same concurrency, prompt and output sizes; ``PREFIX_calibration.json``,
shown in the report). The emulator (``python -m emulator``) runs with no prefill cost and 1 ms decode
steps, as fast a server as this machine can host; a headless ``locust`` with the run's sizes streams
from it. Its log is the truth: the client's TTFT minus the emulator's for the same request (the
emulator counts from the kernel's receive stamp to its write of the first token), and the same for the
decode span over the tokens after the first (the ITL error). Chunks per client CPU second = streamed
chunks / the client process's CPU time during the test (its CPU guard's count: start-up not included).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from users.calibration.floor import calibrate, describe


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m users.calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("-u", "--users", type=int, default=128)
    p.add_argument("--input-tokens", type=int, default=2048)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--endpoint", choices=("chat", "completions"), default="chat")
    p.add_argument("--out", default="", help="write the figures here (JSON)")
    args = p.parse_args(argv)
    if min(args.users, args.input_tokens, args.max_tokens) < 1 or not args.seconds > 0:
        print("error: -u, --input-tokens and --max-tokens must be at least 1, --seconds positive", file=sys.stderr)
        return 2
    try:
        result = calibrate(args.users, args.input_tokens, args.max_tokens, args.seconds, args.endpoint)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(describe(result))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
