"""What ships in production is runtime code only (docs/internals.md, "Development code").

The runtime packages (libs/contracts, libs/kit, libs/bus and every service) import no
development code: not devkit (the embedded Mongo, test helpers, seeders, the SMTP sink), not
pytest, testcontainers or mongoeco. No service depends on shop-devkit or mongoeco, so the
production image (`uv sync --no-dev --package shop-<svc>`) cannot contain them. And no runtime
module reads the environment itself: settings classes do (kit.settings), so every setting is
typed, validated and listed in one place.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_SOURCES = [ROOT / "libs" / lib / "src" for lib in ("contracts", "kit", "bus")] + sorted(
    (ROOT / "services").glob("*/src")
)
DEVELOPMENT_ONLY = ("devkit", "pytest", "_pytest", "testcontainers", "mongoeco")
DEVELOPMENT_DISTRIBUTIONS = ("shop-devkit", "mongoeco", "pytest", "testcontainers", "aiosmtpd")


def runtime_modules() -> Iterator[Path]:
    for source in RUNTIME_SOURCES:
        yield from sorted(source.rglob("*.py"))


def imported(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in `tree`, inside functions too."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def reads_environment(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, what) of every `os.environ` / `os.getenv` / `os.putenv` use, and of a
    `from os import environ|getenv`."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in ("environ", "environb", "getenv", "getenvb", "putenv")
        ):
            yield node.lineno, f"os.{node.attr}"
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            for alias in node.names:
                if alias.name.startswith(("environ", "getenv", "putenv")):
                    yield node.lineno, f"from os import {alias.name}"


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def test_the_runtime_sources_are_found() -> None:
    modules = list(runtime_modules())
    names = {path.relative_to(ROOT).parts[:2] for path in modules}
    assert {("libs", "kit"), ("libs", "bus"), ("libs", "contracts")} <= names
    assert len({p for p in RUNTIME_SOURCES if p.parts[-3] == "services"}) >= 7
    assert len(modules) > 50


def test_no_runtime_module_imports_development_code() -> None:
    found = [
        f"{where(path, line)} imports {module}"
        for path in runtime_modules()
        for line, module in imported(ast.parse(path.read_text(), str(path)))
        if module.split(".")[0] in DEVELOPMENT_ONLY
    ]
    assert not found, "development code in a runtime package:\n" + "\n".join(found)


def test_no_runtime_module_reads_the_environment_itself() -> None:
    found = [
        f"{where(path, line)}: {what}"
        for path in runtime_modules()
        for line, what in reads_environment(ast.parse(path.read_text(), str(path)))
    ]
    assert not found, "read through a settings class instead (kit.settings):\n" + "\n".join(found)


def requirement_name(requirement: str) -> str:
    name = requirement
    for stop in "[<>=!~; ":
        name = name.split(stop, 1)[0]
    return name.strip().lower()


def runtime_pyprojects() -> list[Path]:
    return [source.parent / "pyproject.toml" for source in RUNTIME_SOURCES]


@pytest.mark.parametrize("pyproject", runtime_pyprojects(), ids=lambda p: p.parent.name)
def test_no_runtime_package_depends_on_development_packages(pyproject: Path) -> None:
    project = tomllib.loads(pyproject.read_text())
    names = {requirement_name(r) for r in project["project"].get("dependencies", [])}
    optional = project["project"].get("optional-dependencies", {})
    names |= {requirement_name(r) for group in optional.values() for r in group}
    unwanted = names & set(DEVELOPMENT_DISTRIBUTIONS)
    assert not unwanted, f"{pyproject.parent.name} depends on {sorted(unwanted)}"


def test_devkit_is_a_development_dependency_of_the_workspace_only() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "shop-devkit" in {requirement_name(r) for r in root["dependency-groups"]["dev"]}
    assert "shop-devkit" not in {requirement_name(r) for r in root["project"]["dependencies"]}
    devkit = tomllib.loads((ROOT / "libs" / "devkit" / "pyproject.toml").read_text())
    assert devkit["project"]["name"] == "shop-devkit"
    assert "mongoeco" in {requirement_name(r) for r in devkit["project"]["dependencies"]}
