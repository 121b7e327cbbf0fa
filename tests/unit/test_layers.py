"""The folders are the architecture: the client knows nothing of Locust or of users/, and neither do
prompts/ and reports/; the emulator shares nothing with the client. Read from the import statements."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

import pytest

from tests.procs import ROOT
from users.options import OPTIONS, Settings


def import_statements(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """Each absolute import of a file, type-only ones included: (module, the names ``from module import`` takes)."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.extend((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.module, tuple(alias.name for alias in node.names)))
    return out


def imported_modules(package: str) -> dict[str, set[str]]:
    return {
        str(Path(path).relative_to(ROOT)): {module for module, _ in import_statements(path)}
        for path in sorted((ROOT / package).rglob("*.py"))
    }


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


PACKAGES = ("llmclient", "scheduler", "users", "prompts", "reports", "emulator", "bench", "tools", "examples")


def module_graph() -> dict[str, set[str]]:
    """Every first-party module and the first-party modules it imports (``from p import m`` counts m when m is a
    module), those under ``if TYPE_CHECKING`` included: a reader must untangle those circles too."""
    paths = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        edges = {e for module, names in import_statements(path) for e in (module, *(f"{module}.{n}" for n in names))}
        graph[name] = {e for e in edges if e in paths and e != name}
    return graph


def test_no_import_circle_anywhere_type_only_imports_included():
    graph = module_graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import circle: " + " -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        for other in sorted(graph[module]):
            visit(other, [*path, module])
        done.add(module)

    assert len(graph) > 50
    for module in sorted(graph):
        visit(module, [])
