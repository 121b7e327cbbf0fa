"""The docs' reference pages, built from the code's own tables (never typed twice):

    python -m tools.reference options|columns|summary|prometheus|routes|emulator

prints one as Markdown. ``docs/hooks.py`` calls it while the site builds, in a process of its own (the
tables import Locust, which patches the standard library with gevent).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(head: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def options() -> str:
    from users.settings.option import options_of
    from users.settings.sections import SECTIONS

    out = []
    for section in SECTIONS:
        title, rows = section.__doc__, []
        for o in options_of(section):
            flags = ", ".join(f"`{f}`" for f in o.flags)
            default = "" if o.default in (None, "", ()) else f"`{o.default}`"
            form = "no (secret)" if o.secret else ("yes" if o.web_form else "no")
            rows.append((flags, f"`{o.env_var}`", default, form, o.help))
        out.append(
            f"## {title}\n\n" + _table(("option", "environment variable", "default", "web form", "meaning"), rows)
        )
    return "\n".join(out)


def columns() -> str:
    from llmclient.schema import COLUMNS

    return _table(("column", "type", "meaning"), [(f"`{c.name}`", c.kind, c.meaning) for c in COLUMNS])


def summary() -> str:
    from reports.keys import DESCRIPTIVE, FIGURES, SCOPES

    rows = [(f"`{key}`", what) for key, what in FIGURES.items()]
    words = [(f"`{key}`", what) for key, what in DESCRIPTIVE.items()]
    scopes = [(f"`{scope}.<key>`", what) for scope, what in SCOPES.items()]
    return (
        _table(("key", "meaning"), rows)
        + "\n"
        + _table(("key (not a figure to check)", "meaning"), words)
        + "\n"
        + _table(("nested under", "meaning"), scopes)
    )


def prometheus() -> str:
    from users.observe.prometheus_export import FAMILIES, metric_name

    rows = []
    for family in FAMILIES:
        name = metric_name(family)
        names = [f"`{name}{s}`" for s in ("_bucket", "_sum", "_count")] if family.kind == "histogram" else [f"`{name}`"]
        rows.append((", ".join(names), family.kind, family.help))
    return _table(("series", "type", "meaning"), rows)


def routes() -> str:
    from users.web.extension import ROUTES
    from users.web.login import LOGIN_ROUTE

    rows = [(f"`GET {rule}`", what) for rule, (_view, what) in ROUTES.items()]
    rows.append((f"`POST {LOGIN_ROUTE}`", "--web-login: the login form's submission"))
    return _table(("route", "serves"), rows)


def emulator() -> str:
    from emulator.__main__ import parser

    rows = []
    for action in parser()._actions:
        if not action.option_strings or action.dest == "help":
            continue
        default = "" if action.default in (None, [], False) else f"`{action.default}`"
        rows.append((", ".join(f"`{f}`" for f in action.option_strings), default, action.help or ""))
    return _table(("flag", "default", "meaning"), rows)


PAGES: dict[str, Callable[[], str]] = {
    "options": options,
    "columns": columns,
    "summary": summary,
    "prometheus": prometheus,
    "routes": routes,
    "emulator": emulator,
}


DOCS = Path(__file__).resolve().parents[1] / "docs"
# a generated table in a page: from its marker to its end marker (a page not yet written has the marker alone)
BLOCK = re.compile(r"<!-- reference: (\w+) -->\n(?:.*?<!-- /reference -->\n?)?", re.DOTALL)


def filled(markdown: str, tables: Callable[[str], str]) -> str:
    """A page with each reference block holding its table (``tables(name)``), between its two markers."""
    return BLOCK.sub(
        lambda m: f"<!-- reference: {m.group(1)} -->\n{tables(m.group(1)).rstrip()}\n<!-- /reference -->\n", markdown
    )


def stale_pages() -> list[Path]:
    """The docs' pages whose committed tables differ from the code's (``--write`` brings them up to date)."""
    return [
        p
        for p in sorted(DOCS.rglob("*.md"))
        if filled(p.read_text(encoding="utf-8"), _table_of) != p.read_text(encoding="utf-8")
    ]


def _table_of(name: str) -> str:
    return PAGES[name]()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.reference", description=__doc__.splitlines()[0])
    parser.add_argument("page", choices=PAGES, nargs="?", help="print one page's table")
    parser.add_argument("--write", action="store_true", help="write every page's tables into docs/ (committed)")
    args = parser.parse_args(argv)
    if args.write:
        for path in stale_pages():
            path.write_text(filled(path.read_text(encoding="utf-8"), _table_of), encoding="utf-8")
            print(f"wrote {path.relative_to(DOCS.parent)}")
        return 0
    if args.page is None:
        parser.error("name a page, or --write")
    sys.stdout.write(PAGES[args.page]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
