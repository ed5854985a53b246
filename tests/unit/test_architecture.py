"""The layers of src/keel, read from the source: no import circles, and dependencies pointing downward only.

Every import counts, including those inside functions (lazy imports) and under ``TYPE_CHECKING``: a circle of
lazy imports still ties the modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "keel"

FORBIDDEN = {
    # layer: layers it must not import
    "keel.domain": ("keel.io", "keel.application", "keel.serving", "keel.cli"),
    "keel.io": ("keel.application", "keel.serving", "keel.cli"),
    "keel.serving": ("keel.application", "keel.cli"),
    "keel.application": ("keel.cli",),
    # The command line parses, calls one application function and renders its result (keel.render): the
    # registry, files, clusters, the maths and the service are the application's to reach.
    "keel.cli": ("keel.io", "keel.domain", "keel.serving"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The keel modules a file imports (``from keel.x import name`` counts keel.x.name when that is a module)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules] or [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("keel"):
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(path) for path in files}
    return {_module_name(path): _imports(path, modules) for path in files}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_reader_sees_the_imports_it_must_judge() -> None:
    graph = _graph()
    assert "keel.application.engines" in graph["keel.application.train"]
    assert "keel.application.prepare" in graph["keel.application.engines"]
    assert "keel.domain.estimators" in graph["keel.application.prepare"]
    assert "keel.io.cluster" in graph["keel.application.engines"]  # a lazy import, inside a method
    assert "keel.application.models" in graph["keel.cli"]  # a lazy import, inside a command
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles_in_the_package() -> None:
    assert _circles(_graph()) == []


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if module == layer or module.startswith(layer + ".")
        for target in targets
        if any(target == banned or target.startswith(banned + ".") for banned in FORBIDDEN[layer])
    )
    assert wrong == []
