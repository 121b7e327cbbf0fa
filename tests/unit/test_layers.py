"""The folders are the architecture: the client knows nothing of Locust or of users/, and neither do
prompts/ and reports/; the emulator shares nothing with the client. Read from the import statements."""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

import pytest

from tests.procs import ROOT
from users.settings.option import options_of
from users.settings.sections import OPTIONS, SECTIONS
from users.settings.settings import Settings


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
        # runs Locust as a process of its own
        ("tuning", ("locust", "users", "prompts", "emulator", "gevent")),
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
    # and the one-line errors of a command line (llmclient.errors.one_line_errors)
    assert used <= {"llmclient", "llmclient.schema", "llmclient.server_metrics", "llmclient.cpu", "llmclient.errors"}
    scheduler = {n for names in imported_modules("reports").values() for n in names if n.startswith("scheduler")}
    # the schedule proof, the SLO rule and the level verdicts: the run and the report judge alike
    assert scheduler <= {"scheduler.proof", "scheduler.slo", "scheduler.levels", "scheduler.errors"}, scheduler


def test_each_option_is_declared_once_as_a_field_of_one_section_and_settings_holds_each_section():
    """An option's name, flags, default and help are its field's: no table beside the sections."""
    assert [o.dest for o in OPTIONS] == [o.dest for s in SECTIONS for o in options_of(s)]
    assert len({o.dest for o in OPTIONS}) == len({o.env_var for o in OPTIONS}) == len(OPTIONS)
    held = {f.type for f in fields(Settings)}
    assert {s.__name__ for s in SECTIONS} <= held, held


PACKAGES = ("llmclient", "scheduler", "users", "prompts", "reports", "emulator", "bench", "tools", "examples", "tuning")


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


# users/ as rooms: each folder one job (docs/development/layout.md says which); the files at its top are the public user
# API (what a locustfile imports). Which rooms a room may import, and which Locust, gevent and flask modules.
ROOMS: dict[str, tuple[set[str], set[str]]] = {
    "settings": (set(), {"gevent", "locust.argument_parser"}),
    "supply": ({"settings"}, {"gevent", "locust.exception"}),
    "observe": ({"settings"}, {"gevent"}),
    "services": ({"settings", "supply", "observe"}, {"gevent"}),
    "load": ({"settings", "supply", "observe", "services"}, {"gevent", "locust.exception"}),
    "distributed": (
        {"settings", "observe", "services", "load"},
        {"gevent", "locust.env", "locust.rpc", "locust.runners"},
    ),
    "calibration": (set(), set()),
    "web": ({"settings", "observe"}, {"flask", "flask_login", "locust.env"}),
    "runtime": ({"settings", "supply", "observe", "services", "load", "distributed", "calibration", "web"}, {"*"}),
    "api": ({"*"}, {"*"}),
}
# only these touch Locust's events and its User
ATTACHED = {"runtime", "api"}


def room_of(path: Path) -> str:
    parts = path.relative_to(ROOT / "users").parts
    return parts[0] if len(parts) > 1 else "api"


def room_files() -> list[tuple[str, Path]]:
    return [(room_of(path), path) for path in sorted((ROOT / "users").rglob("*.py"))]


def test_every_room_of_users_is_in_the_rules_and_the_docs_layout():
    rooms = {room for room, _ in room_files()}
    assert rooms == set(ROOMS), rooms ^ set(ROOMS)
    page = (ROOT / "docs" / "development" / "layout.md").read_text(encoding="utf-8")
    # the Layout map of users/
    layout = page[page.index("\nusers/ ") : page.index("\nprompts/ ")]
    assert {room for room in rooms - {"api"} if f"\n  {room}/ " not in layout} == set()


@pytest.mark.parametrize(("room", "path"), room_files(), ids=lambda v: str(v.name) if isinstance(v, Path) else v)
def test_a_room_imports_only_what_its_rule_allows(room, path):
    rooms, third = ROOMS[room]
    bad = []
    for module, _names in import_statements(path):
        parts = module.split(".")
        if parts[0] == "users" and len(parts) > 1:
            other = parts[1] if (ROOT / "users" / parts[1]).is_dir() else "api"
            if other != room and other not in rooms and "*" not in rooms:
                bad.append(module)
        elif parts[0] in ("locust", "gevent", "flask", "flask_login") and "*" not in third:
            if not any(module == allowed or module.startswith(allowed + ".") for allowed in third):
                bad.append(module)
    assert not bad, f"{path.relative_to(ROOT)} ({room}) may not import {bad}"


@pytest.mark.parametrize(
    ("room", "path"),
    [(r, p) for r, p in room_files() if r not in ATTACHED],
    ids=lambda v: str(v.name) if isinstance(v, Path) else v,
)
def test_only_the_runtime_and_the_user_api_touch_locusts_events_and_user(room, path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    events = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "events"]
    users = [
        name
        for module, names in import_statements(path)
        if module in ("locust", "locust.user")
        for name in names or ("*",)
    ]
    assert not events and not users, f"{path.relative_to(ROOT)}: .events at lines {events}, imports {users}"


def too_long(path: Path) -> list[str]:
    """Functions over 50 lines and classes over 15 methods."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
            if node.end_lineno - node.lineno + 1 > 50:
                out.append(f"{node.name}: {node.end_lineno - node.lineno + 1} lines")
        elif isinstance(node, ast.ClassDef):
            methods = [n for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
            if len(methods) > 15:
                out.append(f"class {node.name}: {len(methods)} methods")
    return out


def source_files() -> list[Path]:
    """Every Python file of the project outside tests (and outside the virtual environments)."""
    top = [p for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists() and p.name != "tests"]
    return sorted({*(f for d in top for f in d.rglob("*.py")), *ROOT.glob("*.py"), *(ROOT / "examples").rglob("*.py")})


def test_no_function_over_50_lines_and_no_class_over_15_methods():
    found = {str(p.relative_to(ROOT)): too_long(p) for p in source_files()}
    assert {"emulator/server.py", "bench/open_loop.py", "tools/reference.py"} <= set(found)
    assert not {p: v for p, v in found.items() if v}


def test_the_formatter_is_off_only_for_a_handful_of_aligned_tables():
    """Comments sit above the lines they explain, so the formatter runs everywhere."""
    skipped = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in [*source_files(), *(ROOT / "tests").rglob("*.py")]
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if "fmt: " + "skip" in line or "fmt: " + "off" in line
    ]
    assert len(skipped) <= 5, skipped


def test_the_unit_tests_folders_mirror_the_packages():
    """tests/unit/X/Y/ tests X/Y/: a folder there names a folder of the project."""
    folders = [p.parent.relative_to(ROOT / "tests" / "unit") for p in (ROOT / "tests" / "unit").rglob("test_*.py")]
    strays = sorted({str(f) for f in folders if f.parts and not (ROOT / f).is_dir()})
    assert not strays and len({f for f in folders if f.parts}) >= 10, strays


def assignments(path: Path) -> list[ast.expr]:
    """Every target assigned to in a file (tuples unpacked)."""
    out: list[ast.expr] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AugAssign | ast.AnnAssign)
            else []
        )
        for target in targets:
            out += target.elts if isinstance(target, ast.Tuple) else [target]
    return out


def test_the_run_is_wired_by_constructors_and_keeps_one_handle_on_locusts_environment():
    """A part gets its collaborators in its constructor: nothing assigns into a part it holds
    (``self.part.attribute = …``); the run hangs off Locust's environment by one handle (runtime/handle.py),
    and what else is set on the environment is Locust's own."""
    from locust.env import Environment

    locusts = set(vars(Environment())) | set(dir(Environment))
    reaching, handles, foreign = [], [], []
    for path in sorted((ROOT / "users").rglob("*.py")):
        where = str(path.relative_to(ROOT))
        for t in assignments(path):
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Attribute):
                if isinstance(t.value.value, ast.Name) and t.value.value.id == "self":
                    reaching.append(f"{where}: {ast.unparse(t)}")
            if isinstance(t, ast.Attribute) and ast.unparse(t.value).endswith("environment") and t.attr not in locusts:
                foreign.append(f"{where}: {ast.unparse(t)}")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setattr"]
        handles += [where for call in calls if ast.unparse(call.args[0]).endswith("environment")]
    assert not reaching, reaching
    assert not foreign, foreign
    assert handles == ["users/runtime/handle.py"]


def test_the_client_and_the_scheduler_raise_errors_that_name_no_flag():
    """They name parameters (scheduler/errors.py); the Locust layer and the report command name flags."""
    flagged = []
    for package in ("llmclient", "scheduler"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Raise) and node.exc is not None:
                    text = " ".join(
                        str(c.value)
                        for c in ast.walk(node.exc)
                        if isinstance(c, ast.Constant) and isinstance(c.value, str)
                    )
                    if re.search(r"(^|\s)--[a-z]", text):
                        flagged.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text[:60]}")
    assert not flagged, flagged
