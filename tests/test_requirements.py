"""The requirement files match what each layer imports: the Lambda ships requirements.txt, `make run`
installs requirements-local.txt, `make test` requirements-dev.txt.

Each file's distributions are closed over their declared dependencies (read from the installed
packages' metadata), then every third-party module the layer's code imports must come from that
closure. The size and time of a fresh `make run` install are measured by bench/install.py.
"""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
# bench/ scripts import their siblings (`from _common import ...`) by file name.
PROJECT_MODULES = {"app", "chalicelib", "dalet_ops", "tests", "bench"} | {path.stem for path in (ROOT / "bench").glob("*.py")}
TEST_TOOLS = {"pytest", "moto", "hypothesis", "playwright", "scipy", "statsmodels", "cfn-lint", "aws-sam-translator"}


def requirements(file_name: str) -> set[Requirement]:
    """The requirements a file names, following `-r other.txt`."""
    found: set[Requirement] = set()
    for line in (ROOT / file_name).read_text(encoding="utf-8").splitlines():
        line = line.split(" #")[0].split("\t#")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            found |= requirements(line.removeprefix("-r ").strip())
        else:
            found.add(Requirement(line))
    return found


@cache
def _with_dependencies(name: str, extras: frozenset[str]) -> frozenset[str]:
    names = {canonicalize_name(name)}
    for declared in importlib.metadata.requires(name) or []:
        dependency = Requirement(declared)
        if dependency.marker and not any(dependency.marker.evaluate({"extra": extra}) for extra in extras | {""}):
            continue
        names |= _with_dependencies(dependency.name, frozenset(dependency.extras))
    return frozenset(names)


def installed_closure(file_name: str) -> set[str]:
    """Every distribution a file's requirements bring, by canonical name."""
    closure: set[str] = set()
    for requirement in requirements(file_name):
        closure |= _with_dependencies(requirement.name, frozenset(requirement.extras))
    return closure


def third_party_imports(*folders_or_files: str) -> set[str]:
    """Top-level names of the non-standard, non-project modules imported anywhere in the given code."""
    paths: list[Path] = []
    for name in folders_or_files:
        path = ROOT / name
        paths += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    imported: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    return imported - set(sys.stdlib_module_names) - PROJECT_MODULES - {"__future__"}


@cache
def _distributions_by_module() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def providers(module: str) -> set[str]:
    return {canonicalize_name(name) for name in _distributions_by_module().get(module, [])}


def unprovided(modules: set[str], closure: set[str]) -> list[str]:
    return sorted(module for module in modules if not providers(module) & closure)


LOCAL_ONLY = {"duckdb", "pyarrow", "sqlglot"}   # the local warehouse: chalicelib imports them only on that backend
PACKAGED_BY_CHALICE = {"chalice"}               # `chalice package` adds its own runtime to the zip


def test_the_lambda_requirements_provide_every_module_the_shipped_code_imports_but_the_local_warehouses():
    shipped = third_party_imports("app.py", "chalicelib") - LOCAL_ONLY - PACKAGED_BY_CHALICE

    assert unprovided(shipped, installed_closure("requirements.txt")) == []


def test_the_lambda_requirements_hold_nothing_the_shipped_code_does_not_import():
    named = {canonicalize_name(requirement.name) for requirement in requirements("requirements.txt")}
    imported = set().union(*(providers(module) for module in third_party_imports("app.py", "chalicelib")))

    assert named - imported == set()


def test_make_run_installs_what_the_app_the_local_server_and_the_deploy_commands_import():
    code = third_party_imports("app.py", "chalicelib", "dalet_ops")

    assert unprovided(code, installed_closure("requirements-local.txt")) == []


def test_make_run_installs_no_test_tool():
    assert TEST_TOOLS & installed_closure("requirements-local.txt") == set()


def test_make_test_installs_what_the_tests_and_benchmarks_import():
    code = third_party_imports("tests", "bench")

    assert unprovided(code, installed_closure("requirements-dev.txt")) == []


def test_the_makefile_installs_the_local_set_for_run_and_the_dev_set_for_test():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")

    assert re.search(r"^run: install-local$", makefile, flags=re.MULTILINE)
    assert re.search(r"^test: install\b", makefile, flags=re.MULTILINE)
    assert "pip install -q --no-compile -r requirements-local.txt" in makefile
    assert "pip install -q -r requirements-dev.txt" in makefile
