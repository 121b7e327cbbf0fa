"""What a synthetic prompt costs to build: counts per prompt, prompts/s, and the share exactly as long as asked.

    python -m bench.prompt_build [--prompts 400]

Two counters: the tiny Llama tokenizer (byte-level BPE, built offline by ``tools.tiny_llama``) in
process, and the emulator's ``/tokenize`` over HTTP (its sub-word tokenizer; every count is a call,
as with vLLM's). One builder per shape, prompts built one after another (the run's pool builds 8 at
a time; the counts per prompt are the same).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llmclient.control import ServerTokenizer
from llmclient.http import Target
from prompts.synthetic import SharedPrefixPrompts
from prompts.tokenizer import LocalTokenizer, TokenCounter

# (input tokens, prefix tokens, prefix groups)
SHAPES = [(1024, 0, 1), (2048, 1536, 4), (1024, 960, 1)]


class Counting:
    """A counter that counts its calls."""

    def __init__(self, inner: TokenCounter) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls = 0

    def count(self, content: str, chat: bool) -> int:
        self.calls += 1
        return self.inner.count(content, chat)


def measure(counter: TokenCounter, prompts: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for input_tokens, prefix_tokens, groups in SHAPES:
        counting = Counting(counter)
        started = time.perf_counter()
        source = SharedPrefixPrompts(counting, True, input_tokens, prefix_tokens, groups, seed=1)
        built = [source.next_prompt() for _ in range(prompts)]
        seconds = time.perf_counter() - started
        calls = counting.calls
        exact = sum(counter.count(p.content, True) == input_tokens for p in built)
        out.append(
            {
                "counter": counter.name,
                "shape": f"{input_tokens}/{prefix_tokens}x{groups}",
                "counts_per_prompt": calls / prompts,
                "prompts_per_s": prompts / seconds,
                "exact": exact / prompts,
            }
        )
    return out


def emulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "emulator", "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("emulator ready on "):
        proc.kill()
        sys.exit(f"the emulator did not start: {line!r}")
    return proc, line.split()[3]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.prompt_build", description=__doc__)
    ap.add_argument("--prompts", type=int, default=400)
    args = ap.parse_args(argv)
    from tools.tiny_llama import build_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        build_tokenizer(tmp)
        rows = measure(LocalTokenizer(str(Path(tmp))), args.prompts)
    proc, url = emulator()
    try:
        rows += measure(ServerTokenizer(Target.parse(url), "emulated-llama", {}), args.prompts)
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"{'counter':34} {'shape':14} {'counts/prompt':>13} {'prompts/s':>10} {'exact':>7}")
    for r in rows:
        print(
            f"{r['counter']!s:34} {r['shape']!s:14} {r['counts_per_prompt']:13.2f} {r['prompts_per_s']:10.0f} "
            f"{r['exact']:7.1%}"
        )
    return 0 if all(r["exact"] == 1.0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
