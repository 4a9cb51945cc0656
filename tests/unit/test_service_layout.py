"""Every data service follows the skeleton of docs/internals.md ("The service skeleton").

A newcomer who has read one service finds the same modules, the same names and short routes and
handlers in every other one. Checked on the source (AST), so it costs nothing to run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("user", "inventory", "order", "payment", "notify", "analytics", "shipping")
# The modules of the skeleton; `domain` may be a package when it holds several concepts.
REQUIRED = ("__main__", "main", "settings", "deps", "bootstrap", "api", "schemas", "commands",
            "handlers", "domain", "store")  # fmt: skip
# A route or a handler parses, runs one command and answers: about this many lines at most.
MAX_LINES = 30
# What the runtime packages must never import (development code, docs/internals.md).
DEV_MODULES = ("devkit", "pytest", "mongoeco", "testcontainers")
# The shared aliases and the clock live in kit; a service does not define its own.
SHARED_NAMES = {"Db", "Doc", "Session", "utcnow"}


def package(service: str) -> Path:
    return ROOT / "services" / service / "src" / f"{service}_service"


def module_path(service: str, name: str) -> Path:
    base = package(service)
    return base / name / "__init__.py" if (base / name).is_dir() else base / f"{name}.py"


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def runtime_modules(service: str) -> list[Path]:
    return sorted(package(service).rglob("*.py"))


def length(node: ast.AST) -> int:
    end = getattr(node, "end_lineno", None) or node.lineno  # type: ignore[attr-defined]
    return int(end) - int(node.lineno) + 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("service", SERVICES)
def test_every_skeleton_module_is_there(service: str) -> None:
    missing = [name for name in REQUIRED if not module_path(service, name).exists()]
    assert not missing, f"{service} lacks {missing}"


@pytest.mark.parametrize("service", SERVICES)
def test_the_handler_table_is_HANDLERS_at_module_level(service: str) -> None:  # noqa: N802
    tree = parse(module_path(service, "handlers"))
    assigned = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    assert "HANDLERS" in assigned
    builders = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name in {"handler_table", "build_handlers"}
    ]
    assert not builders, f"{service}: the table is the constant HANDLERS, not {builders}"


@pytest.mark.parametrize("service", SERVICES)
def test_routes_and_handlers_are_short(service: str) -> None:
    long: list[str] = []
    for name in ("api", "handlers"):
        for node in ast.walk(parse(module_path(service, name))):
            if (
                isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
                and length(node) > MAX_LINES
            ):
                long.append(f"{name}.{node.name} ({length(node)} lines)")
    assert not long, f"{service}: longer than {MAX_LINES} lines: {long}"


@pytest.mark.parametrize("service", SERVICES)
def test_no_development_code_in_the_runtime_package(service: str) -> None:
    found: list[str] = []
    for path in runtime_modules(service):
        for node in ast.walk(parse(path)):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            found += [f"{path.name}: {n}" for n in names if n.startswith(DEV_MODULES)]
    assert not found, found


@pytest.mark.parametrize("service", SERVICES)
def test_shared_aliases_and_clock_come_from_kit(service: str) -> None:
    redefined: list[str] = []
    for path in runtime_modules(service):
        for node in parse(path).body:
            name = None
            if isinstance(node, ast.TypeAlias) and isinstance(node.name, ast.Name):
                name = node.name.id
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                name = node.name
            if name in SHARED_NAMES:
                redefined.append(f"{path.name}: {name}")
    assert not redefined, f"{service} redefines {redefined} (kit.mongo, kit.clock)"


@pytest.mark.parametrize("service", SERVICES)
def test_the_domain_is_pure(service: str) -> None:
    impure = ("fastapi", "pymongo", "aio_pika", "bus", "kit.mongo", "kit.transactions",
              f"{service}_service.settings", f"{service}_service.store")  # fmt: skip
    base = package(service)
    paths = sorted((base / "domain").rglob("*.py")) if (base / "domain").is_dir() else []
    paths = paths or [base / "domain.py"]
    found: list[str] = []
    for path in paths:
        for node in ast.walk(parse(path)):
            module = None
            if isinstance(node, ast.ImportFrom):
                module = node.module
            elif isinstance(node, ast.Import):
                module = node.names[0].name
            if module and module.split(".")[0] in impure or module in impure:
                found.append(f"{path.name}: {module}")
    assert not found, f"{service}'s domain imports I/O: {found}"
