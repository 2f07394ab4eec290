"""The import graph stays a tree a maintainer can read: no circle inside chalicelib, no private name
imported across modules (chalicelib/, dalet_ops/, app.py).

Read from the source with ast, so function-level imports count as much as module-level ones (a
circle hidden in a function still ties two modules together). Imports under `if TYPE_CHECKING:`
never run and are left out.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("chalicelib", "dalet_ops")

@dataclass(frozen=True)
class Import:
    importer: str
    module: str             # the module imported, or the one a name is imported from
    name: str | None        # the name taken from it (`from module import name`), if any
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> dict[str, Path]:
    files = {module_name(path): path for folder in SCANNED for path in (ROOT / folder).rglob("*.py")}
    files["app"] = ROOT / "app.py"
    return files


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _absolute(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base[:len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(importer: str, path: Path) -> list[Import]:
    """Every import the module can run, at any depth; `from package import module` names the module."""
    found: list[Import] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(importer, alias.name, None, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(importer, path.name == "__init__.py", node)
            found.extend(Import(importer, module, alias.name, node.lineno) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return found


def all_imports() -> list[Import]:
    return [found for name, path in source_files().items() for found in imports_of(name, path)]


def chalicelib_graph() -> dict[str, set[str]]:
    modules = {name for name in source_files() if name.startswith("chalicelib")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for found in all_imports():
        if found.importer not in modules:
            continue
        submodule = f"{found.module}.{found.name}"
        target = submodule if submodule in modules else found.module
        if target in modules and target != found.importer:
            graph[found.importer].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def connect(module: str) -> None:
        index[module] = lowest[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph[module]):
            if imported not in index:
                connect(imported)
                lowest[module] = min(lowest[module], lowest[imported])
            elif imported in on_stack:
                lowest[module] = min(lowest[module], index[imported])
        if lowest[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for module in sorted(graph):
        if module not in index:
            connect(module)
    return found


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports() -> set[tuple[str, str, str]]:
    return {(found.importer, found.module, found.name) for found in all_imports()
            if found.name is not None and _is_private(found.name) and found.module != "__future__"}


def test_chalicelib_has_no_import_circle():
    found = [sorted(circle) for circle in circles(chalicelib_graph())]
    assert found == [], f"import circles in chalicelib: {found}"


def test_no_module_imports_another_modules_private_name():
    unexpected = sorted(private_imports())
    assert unexpected == [], f"(importer, module, private name) imported across modules: {unexpected}"


def test_the_check_sees_a_function_level_circle_and_a_private_import(tmp_path):
    # The checks themselves: a circle closed by an import inside a function, and `from x import _y`.
    graph = {"chalicelib.a": {"chalicelib.b"}, "chalicelib.b": {"chalicelib.a"}, "chalicelib.c": {"chalicelib.a"}}
    assert circles(graph) == [frozenset({"chalicelib.a", "chalicelib.b"})]
    module = tmp_path / "b.py"
    module.write_text("import os\n\ndef late():\n    from chalicelib.a import _hidden, shown\n", encoding="utf-8")
    assert [(found.module, found.name) for found in imports_of("chalicelib.b", module)] == [
        ("os", None), ("chalicelib.a", "_hidden"), ("chalicelib.a", "shown")]
    assert _is_private("_hidden") and not _is_private("__version__") and not _is_private("shown")
