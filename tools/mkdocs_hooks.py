"""MkDocs hook: each ``<!-- reference: NAME -->`` block in a page holds ``python -m tools.reference NAME``'s
table, built anew from the code while the site builds (the committed pages hold it too, for reading in
the repository: ``python -m tools.reference --write``; a test fails when they are stale), and ``<!-- file: NAME -->`` a root file's text (``mkdocs.yml``:
``hooks``)."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# mkdocs loads this file by its path
sys.path.insert(0, str(ROOT))

from tools.reference import filled  # noqa: E402  (the repository on the path first)

# a file at the repository's root (CHANGELOG.md), without its title
FILE = re.compile(r"<!-- file: ([\w.-]+) -->")


@cache
def reference(name: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tools.reference", name], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"tools.reference {name} failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def root_file(name: str) -> str:
    text = (ROOT / name).read_text(encoding="utf-8")
    return text.split("\n", 1)[1] if text.startswith("# ") else text


def on_page_markdown(markdown: str, **_kwargs: Any) -> str:
    markdown = FILE.sub(lambda m: root_file(m.group(1)), markdown)
    return filled(markdown, reference)
