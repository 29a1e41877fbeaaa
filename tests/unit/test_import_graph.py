"""No import cycles between the modules of classifier/ and routing/, counting imports inside functions too."""

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("classifier", "routing")


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """module -> the project modules it imports (any scope; `TYPE_CHECKING` blocks excluded)."""
    files = {_module_name(p, root): p for pkg in packages for p in (root / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for child in node.body
            for n in ast.walk(child)
        }
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, path.name == "__init__.py", node)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                # the deepest project module the name refers to (a name imported from a module is not a module)
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != module:
                    graph[module].add(t)
    # importing a.b runs a/__init__.py first, but that is the package, not a cycle of ours
    return {module: {t for t in targets if not module.startswith(t + ".")} for module, targets in graph.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_finder_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_reads_imports_inside_functions(tmp_path):
    """On a package whose imports all sit inside functions or methods, or under TYPE_CHECKING."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n\n\nclass C:\n    def m(self):\n        import pkg.c\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from .a import C\n")
    (pkg / "c.py").write_text("def g():\n    from .b import TYPE_CHECKING\n")
    assert import_graph(tmp_path, ("pkg",)) == {
        "pkg": set(),
        "pkg.a": {"pkg.b", "pkg.c"},
        "pkg.b": set(),
        "pkg.c": {"pkg.b"},
    }
    assert find_cycle(import_graph(tmp_path, ("pkg",))) is None  # a -> b -> a only for the type checker


def test_the_graph_covers_both_packages():
    graph = import_graph()
    assert {"classifier.serving.cascade", "routing.router"} <= set(graph) and all(m.startswith(PACKAGES) for m in graph)


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_serving_never_reaches_training_or_building():
    """What answers a query (`serving/`, and `model_files/`, which `Cascade.load` reads a model with) imports no
    training or asset-building code, directly or through another module: the serving install has neither torch
    nor scikit-learn."""
    graph = import_graph()
    serving = [m for m in graph if m.startswith(("classifier.serving", "classifier.model_files"))]
    assert "classifier.serving.cascade" in serving and "classifier.model_files.load" in serving
    bad = {
        m: sorted(t for t in _reachable(graph, m) if t.startswith(("classifier.training", "classifier.building")))
        for m in serving
    }
    assert not {m: ts for m, ts in bad.items() if ts}


def test_the_shared_modules_import_no_subpackage():
    """classifier/'s top-level modules (errors, data, params, results...) are what every subpackage shares."""
    graph = import_graph()
    inside = {m for m in graph if m.count(".") >= 2 and m.startswith("classifier.")}
    subpackages = inside | {m.rpartition(".")[0] for m in inside}
    shared = [m for m in graph if m.startswith("classifier.") and m not in subpackages]
    assert "classifier.errors" in shared and "classifier.data" in shared and "classifier.serving" not in shared
    assert not {m: sorted(graph[m] & subpackages) for m in shared if graph[m] & subpackages}
