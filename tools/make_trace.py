"""Write a Mooncake-style trace to replay with ``--trace``: Poisson arrivals, shared prefixes of Zipf popularity.

    python -m tools.make_trace OUT.jsonl [--requests 200] [--rate 4] [--prefixes 8] [--zipf 1.1] ...

Each line is ``{"timestamp": ms, "input_length": n, "output_length": m, "hash_ids": [...]}``, one
hash id per block of ``--block-tokens`` tokens, equal ids identical blocks. Every request starts
with the ``--root-blocks`` every request shares (a system prompt), then the blocks of one of
``--prefixes`` shared prefixes (each a chain of 1 to ``--prefix-blocks`` blocks, picked with Zipf
popularity: prefix k is chosen in proportion to 1 / k ** zipf), then 1 to ``--unique-blocks``
blocks of its own, the last one partly filled. Nothing is copied from a public trace.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator


def generate(
    requests: int = 200,
    rate: float = 4.0,
    prefixes: int = 8,
    zipf: float = 1.1,
    root_blocks: int = 1,
    prefix_blocks: int = 3,
    unique_blocks: int = 2,
    block_tokens: int = 512,
    output_tokens: int = 64,
    seed: int = 0,
) -> Iterator[dict]:
    """The trace's records, in time order."""
    rng = random.Random(f"trace-{seed}")
    next_id = 0

    def new_ids(n: int) -> list[int]:
        nonlocal next_id
        ids = list(range(next_id, next_id + n))
        next_id += n
        return ids

    root = new_ids(root_blocks)
    chains = [new_ids(rng.randint(1, prefix_blocks)) for _ in range(prefixes)]
    weights = [1.0 / (k + 1) ** zipf for k in range(prefixes)]
    t = 0.0
    for _ in range(requests):
        chain = rng.choices(chains, weights)[0] if chains else []
        own = new_ids(rng.randint(1, unique_blocks))
        ids = root + chain + own
        # the last block partly filled
        input_length = len(ids) * block_tokens - rng.randrange(block_tokens)
        yield {
            "timestamp": round(t * 1000),
            "input_length": input_length,
            "output_length": rng.randint(max(1, output_tokens // 2), output_tokens),
            "hash_ids": ids,
        }
        t += rng.expovariate(rate)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.make_trace", description=__doc__.split("\n")[0])
    p.add_argument("out", help="the JSONL file to write")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--rate", type=float, default=4.0, help="mean arrivals per second (Poisson)")
    p.add_argument("--prefixes", type=int, default=8, help="distinct shared prefixes")
    p.add_argument("--zipf", type=float, default=1.1, help="popularity exponent of the prefixes")
    p.add_argument("--root-blocks", type=int, default=1, help="blocks every request shares first")
    p.add_argument("--prefix-blocks", type=int, default=3, help="most blocks in one shared prefix")
    p.add_argument("--unique-blocks", type=int, default=2, help="most blocks of a request's own")
    p.add_argument("--block-tokens", type=int, default=512)
    p.add_argument("--output-tokens", type=int, default=64, help="most output tokens (at least half of it)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    counts = (args.requests, args.prefix_blocks, args.unique_blocks, args.block_tokens, args.output_tokens)
    if min(counts) < 1 or args.prefixes < 0 or args.root_blocks < 0 or not args.rate > 0:
        print(
            "error: counts must be at least 1 (--prefixes and --root-blocks at least 0), --rate positive",
            file=sys.stderr,
        )
        return 2
    records = generate(
        args.requests,
        args.rate,
        args.prefixes,
        args.zipf,
        args.root_blocks,
        args.prefix_blocks,
        args.unique_blocks,
        args.block_tokens,
        args.output_tokens,
        args.seed,
    )
    try:
        with open(args.out, "w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record) + "\n")
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {args.requests} requests to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
