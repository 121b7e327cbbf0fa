"""The folders are the architecture: the client knows nothing of Locust or of users/, and neither do
prompts/ and reports/; the emulator shares nothing with the client. Read from the import statements."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

import pytest

from tests.procs import ROOT
from users.options import OPTIONS, Settings


def imported_modules(package: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
        out[str(Path(path).relative_to(ROOT))] = names
    return out


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("llmclient", ("locust", "users", "prompts", "reports", "emulator", "scheduler")),
        ("scheduler", ("locust", "users", "llmclient", "prompts", "reports", "emulator", "gevent")),
        ("prompts", ("locust", "users", "reports", "emulator")),
        ("reports", ("locust", "users", "prompts", "emulator")),
        ("emulator", ("locust", "users", "llmclient", "prompts", "reports", "scheduler")),
    ],
)
def test_package_imports_stay_in_their_layer(package, forbidden):
    bad = {
        path: sorted(n for n in names if n.split(".")[0] in forbidden)
        for path, names in imported_modules(package).items()
    }
    assert not {p: n for p, n in bad.items() if n}


def test_reports_use_only_the_row_schema_the_hit_rate_and_the_pure_rules():
    used = {n for names in imported_modules("reports").values() for n in names if n.startswith("llmclient")}
    assert used <= {"llmclient", "llmclient.schema", "llmclient.server_metrics", "llmclient.cpu"}, used
    scheduler = {n for names in imported_modules("reports").values() for n in names if n.startswith("scheduler")}
    # the schedule proof, the SLO rule and the level verdicts: the run and the report judge alike
    assert scheduler <= {"scheduler.proof", "scheduler.slo", "scheduler.levels"}, scheduler


def test_settings_has_one_field_per_option_in_the_same_order():
    assert [f.name for f in fields(Settings)] == [o.dest for o in OPTIONS]
    assert len({o.env_var for o in OPTIONS}) == len(OPTIONS)
