"""The docs hold to the code: the README short with the three questions' commands early, the reference
built from the code's tables (the e2e report test and the exporter's test hold emitted names to it), one
version, and the site building without a warning (scripts/test.sh builds it with --strict)."""

from __future__ import annotations

import re
import tomllib

from tests.procs import ROOT
from tools import reference


def test_the_readme_is_short_and_asks_the_three_questions_early():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200
    first = "\n".join(lines[:80])
    for command in ("-u 128 -r 16 -n 500", "--find-capacity --slo", "--sweep prefix-tokens:0,1536"):
        assert command in first, command


def test_every_page_the_nav_names_exists_and_every_page_is_in_the_nav():
    nav = set(re.findall(r":\s+([\w/-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"), re.MULTILINE))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert nav == pages, nav ^ pages


def test_the_reference_spells_out_every_option_flag_and_emulator_flag():
    from emulator.__main__ import parser
    from users.settings.sections import OPTIONS

    options = reference.options()
    assert {f for o in OPTIONS for f in o.flags if f"`{f}`" not in options} == set()
    assert {o.env_var for o in OPTIONS if f"`{o.env_var}`" not in options} == set()
    emulator = reference.emulator()
    flags = {f for a in parser()._actions for f in a.option_strings if f not in ("-h", "--help")}
    assert {f for f in flags if f"`{f}`" not in emulator} == set()


def test_the_changelog_starts_at_the_version_in_pyproject():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(r"^## (\S+)", changelog, re.MULTILINE).group(1) == version  # type: ignore[union-attr]


def test_the_reference_pages_in_the_repository_are_the_codes_tables():
    from tools.reference import stale_pages

    stale = [str(p) for p in stale_pages()]
    assert not stale, f"stale reference tables in {stale}: run python -m tools.reference --write"
