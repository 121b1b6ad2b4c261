"""The package's import layering, read from the source with ``ast`` (nothing is imported).

Layers (DESIGN §1): sandbox ← envs ← agents ← training ← cli. Checked over every non-test module
of the package, imports at module level *and* inside functions, relative imports resolved:

* ``envs/`` never imports ``turngym.agents``, ``turngym.training`` or ``turngym.cli``;
* ``agents/`` never imports ``turngym.training`` or ``turngym.cli``;
* ``sandbox/`` imports nothing of turngym outside ``turngym.sandbox``, except leaf utilities at the
  package root: modules that import nothing of turngym themselves (``turngym.console``, the
  terminal output every ``cli`` module shares), which sit below every layer;
* no cycle among module-level imports (a cycle hidden behind a function-level import still counts
  only if both directions are module-level; the deferred ones are listed by :func:`import_graph`).

The last tests run the same functions on a small synthetic package, so a forbidden import or a
cycle added there is shown to fail.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]  # the repository root is the package `turngym`
PACKAGE = "turngym"
NOT_PACKAGE = {"tests", "examples", "docs", "build", "dist", "runs"}


@dataclass(frozen=True)
class Import:
    """One import statement's edge: ``source`` imports ``target`` (both dotted module names)."""

    source: str
    target: str
    module_level: bool
    line: int


def modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted name → file of every module under ``root`` (the directory of ``package``), tests,
    examples and hidden or build folders left out."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in NOT_PACKAGE or part.startswith(".") or part == "__pycache__" for part in rel.parts[:-1]):
            continue
        parts = [package, *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import node with whether it runs when the module is imported (module level, class
    bodies and plain ``if``/``try`` included; functions and ``if TYPE_CHECKING:`` excluded)."""

    def walk(node: ast.AST, module_level: bool) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, module_level
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) or (
                isinstance(child, ast.If) and _is_type_checking(child)
            ):
                yield from walk(child, False)
            else:
                yield from walk(child, module_level)

    yield from walk(tree, True)


def import_graph(root: Path, package: str) -> list[Import]:
    """The package-internal imports of every module under ``root`` (see :func:`modules`).

    ``from a import b`` points at ``a.b`` when that is a module, else at ``a``; relative imports
    are resolved against the importing module's package.
    """
    known = modules(root, package)
    edges: list[Import] = []
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, module_level in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [
                    f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix
                    for alias in node.names
                ]
            for target in targets:
                if target == package or target.startswith(package + "."):
                    edges.append(Import(name, target, module_level, node.lineno))
    return edges


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layering_violations(edges: Iterable[Import], package: str = PACKAGE) -> list[str]:
    """Every import that breaks the layering rules of the module docstring (one line per module
    and target, sorted)."""
    edges = list(edges)
    importers = {e.source for e in edges}
    leaves = {e.target for e in edges if e.target.count(".") == 1 and e.target not in importers}
    forbidden = {
        f"{package}.envs": (f"{package}.agents", f"{package}.training", f"{package}.cli"),
        f"{package}.agents": (f"{package}.training", f"{package}.cli"),
    }
    out = set()
    for e in edges:
        for layer, banned in forbidden.items():
            if _in(e.source, layer) and any(_in(e.target, b) for b in banned):
                out.add(f"{e.source}:{e.line} imports {e.target}")
        if _in(e.source, f"{package}.sandbox") and not _in(e.target, f"{package}.sandbox") and e.target not in leaves:
            out.add(f"{e.source}:{e.line} imports {e.target} (sandbox/ imports only turngym.sandbox)")
    return sorted(out)


def module_level_cycles(edges: Iterable[Import]) -> list[list[str]]:
    """The strongly connected components (size > 1, or a self-import) of the module-level import
    graph, each sorted; Tarjan's algorithm."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        if e.module_level:
            graph.setdefault(e.source, set()).add(e.target)
            graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return cycles


@pytest.fixture(scope="module")
def edges() -> list[Import]:
    return import_graph(ROOT, PACKAGE)


def test_the_graph_covers_the_package(edges):
    names = modules(ROOT, PACKAGE)
    assert {"turngym", "turngym.envs.core", "turngym.agents.factory", "turngym.sandbox.factory",
            "turngym.training.trainer", "turngym.bench.run"} <= set(names)
    assert not any(n.startswith("turngym.tests") for n in names)
    # both kinds of import are seen (the trainer uses the factory at module level)
    assert "turngym.agents.factory" in {
        e.target for e in edges if e.source == "turngym.training.trainer" and e.module_level
    }
    assert any(not e.module_level for e in edges)


def test_layers_import_only_downwards(edges):
    assert layering_violations(edges) == []


def test_no_module_level_import_cycles(edges):
    assert module_level_cycles(edges) == []


@pytest.mark.parametrize(
    "a, b",
    [
        ("turngym.agents.hf_policy", "turngym.agents.vllm_policy"),
        ("turngym.training.trainer", "turngym.training.distributed"),
        ("turngym.sandbox", "turngym.sandbox.pool"),
        ("turngym.sandbox", "turngym.sandbox.server"),
        ("turngym.sandbox.docker", "turngym.sandbox.image"),
    ],
)
def test_the_cycles_once_hidden_by_deferred_imports_stay_broken(edges, a, b):
    """Not even a function-level import may lead back: these pairs import in one direction only."""
    both = {(e.source, e.target) for e in edges}
    assert not ((a, b) in both and (b, a) in both), f"{a} and {b} import each other"


# ------------------------------------------------------------------------------------ the checks fail
def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_forbidden_import_is_reported_wherever_it_hides(tmp_path):
    _write(tmp_path, {
        "__init__.py": "",
        "envs/__init__.py": "",
        "envs/core.py": "def f():\n    from ..training import trainer\n",  # relative, in a function
        "agents/__init__.py": "",
        "agents/base.py": "from turngym.envs import core\n",  # allowed: agents → envs
        "training/__init__.py": "",
        "training/trainer.py": "",
        "sandbox/__init__.py": "from turngym.envs.core import f, g\n",
        "sandbox/cli.py": "from turngym.console import table\n",  # a leaf utility: allowed
        "console.py": "import json\n",
    })
    edges = import_graph(tmp_path, "turngym")
    assert Import("turngym.envs.core", "turngym.training.trainer", False, 2) in edges
    assert layering_violations(edges, "turngym") == [
        "turngym.envs.core:2 imports turngym.training.trainer",
        "turngym.sandbox:1 imports turngym.envs.core (sandbox/ imports only turngym.sandbox)",
    ]
    # the leaf stops being one once it imports the package: then sandbox/cli.py is reported too
    _write(tmp_path, {"console.py": "from turngym import envs\n"})
    assert "turngym.sandbox.cli:1 imports turngym.console (sandbox/ imports only turngym.sandbox)" in (
        layering_violations(import_graph(tmp_path, "turngym"), "turngym")
    )


def test_a_module_level_cycle_is_reported_and_a_deferred_one_is_not(tmp_path):
    _write(tmp_path, {
        "__init__.py": "",
        "a.py": "from . import b\n",
        "b.py": "from turngym import c\n",
        "c.py": "import turngym.a\n",  # a → b → c → a, all at module level
        "d.py": "from turngym import e\n",
        "e.py": "def later():\n    from turngym import d\n",  # d ⇄ e, but e's import is deferred
        "f.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from turngym import g\n",
        "g.py": "from turngym import f\n",
    })
    edges = import_graph(tmp_path, "turngym")
    assert module_level_cycles(edges) == [["turngym.a", "turngym.b", "turngym.c"]]
