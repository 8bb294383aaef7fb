"""No import circles among the package's modules, function-local imports included.

A function-local import hides a circle from Python at import time but not from a reader:
the two modules still need each other, so neither can be understood (or moved) alone.
Shared pieces belong in a module both import. Imports under `if TYPE_CHECKING:` are for
annotations only and are not counted. Importing a submodule runs its package's
__init__ too; that implicit edge is not counted either (every submodule would form a
circle with a package that imports it).
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "stylenorm"


def modules(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """{dotted name: file} of every module of `package` under `root` (a package is its __init__.py)."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every import statement, at any depth (functions, classes, try/if), except under `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)  # the else branch runs
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child
            stack.append(child)


def import_graph(root: Path, package: str = PACKAGE) -> dict[str, dict[str, int]]:
    """{module: {module it imports: line of the first such import}}, both in `package`."""
    mods = modules(root, package)

    def nearest(name: str) -> str | None:  # `import a.b.c` where c is a name, not a module: a.b
        while name not in mods and "." in name:
            name = name.rsplit(".", 1)[0]
        return name if name in mods else None

    graph: dict[str, dict[str, int]] = {}
    for name, path in mods.items():
        edges: dict[str, int] = {}
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from the module's own package, up level - 1
                    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    here = here[:len(here) - node.level + 1]
                    base = ".".join(here + ([base] if base else []))
                # `from a import b`: the module a.b where b is one, else a itself
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in mods else base for alias in node.names]
            for target in targets:
                if target == package or target.startswith(package + "."):
                    found = nearest(target)
                    if found is not None and found != name:
                        edges.setdefault(found, node.lineno)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One circle [a, b, ..., a] through each strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan; the package is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)

    found = []
    for group in groups:
        start = min(group)
        # shortest way back to `start` inside the group (breadth first)
        previous = {start: None}
        queue = [start]
        end = None
        while queue and end is None:
            v = queue.pop(0)
            for w in sorted(graph[v]):
                if w == start:
                    end = v
                    break
                if w in group and w not in previous:
                    previous[w] = v
                    queue.append(w)
        path = []
        while end is not None:  # end, ..., start
            path.append(end)
            end = previous[end]
        found.append(path[::-1] + [start])
    return found


def describe(cycle: list[str], graph: dict[str, dict[str, int]], root: Path) -> str:
    mods = modules(root)
    return "\n".join(f"  {a} -> {b}  ({mods[a].relative_to(root)}:{graph[a][b]})" for a, b in zip(cycle, cycle[1:]))


def test_the_package_has_no_import_circles():
    graph = import_graph(REPO)
    found = cycles(graph)
    if found:
        pytest.fail("import circles (function-local imports included):\n"
                    + "\n\n".join(describe(c, graph, REPO) for c in found), pytrace=False)


def test_the_graph_sees_function_local_imports():
    """Guards the test above against passing because it sees nothing: the CLI imports its work inside functions."""
    graph = import_graph(REPO)
    assert "stylenorm.style.train" in graph["stylenorm.cli.style"]
    assert "stylenorm.serve" in graph["stylenorm.cli.serve"]


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_a_circle_through_a_function_local_import_is_found(tmp_path):
    root = _package(tmp_path, {
        "stylenorm/__init__.py": "",
        "stylenorm/a/__init__.py": "def f():\n    from stylenorm.a.b import g\n",
        "stylenorm/a/b.py": "from . import c\n",
        "stylenorm/a/c.py": "from stylenorm.a import f\n",  # f is a name: the package stylenorm.a
        "stylenorm/d.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from stylenorm.e import X
            import stylenorm.a.b
            """,
        "stylenorm/e.py": "import stylenorm.d\n",
    })
    graph = import_graph(root)
    assert graph["stylenorm.a"] == {"stylenorm.a.b": 2}
    assert graph["stylenorm.a.b"] == {"stylenorm.a.c": 1}
    assert graph["stylenorm.d"] == {"stylenorm.a.b": 5}  # not stylenorm.e: annotations only
    assert cycles(graph) == [["stylenorm.a", "stylenorm.a.b", "stylenorm.a.c", "stylenorm.a"]]
    assert "stylenorm/a/__init__.py:2" in describe(cycles(graph)[0], graph, root)
