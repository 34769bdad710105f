"""The package's layering, read from the source: every import, including those inside functions
and under ``TYPE_CHECKING``, counts."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

PACKAGE = Path(__file__).resolve().parents[1] / "visionattn"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: Set[str]) -> Set[str]:
    """The visionattn modules ``path`` imports (``from x import name`` counts x.name when that is a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [origin] + [f"{origin}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            if target in modules and target != name:
                found.add(target)
    return found


def import_graph() -> Dict[str, Set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(f) for f in files}
    return {module_name(f): imports_of(f, modules) for f in files}


def find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One cycle as a path ``[a, b, ..., a]``, or ``[]``. A package importing its own submodule
    (``__init__`` re-exports) is not a cycle by itself, so edges into a package's own
    ``__init__`` from its submodules are ignored."""
    def edges(node: str):
        return [t for t in graph[node] if not node.startswith(t + ".")]

    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        stack.append(node)
        for nxt in edges(node):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a"}}) == []


def test_no_import_cycle_between_modules():
    cycle = find_cycle(import_graph())
    assert not cycle, " -> ".join(cycle)


def test_no_import_cycle_between_subpackages():
    graph: Dict[str, Set[str]] = {}
    for module, targets in import_graph().items():
        src = subpackage(module)
        graph.setdefault(src, set()).update(subpackage(t) for t in targets if subpackage(t) not in ("", src))
    cycle = find_cycle(graph)
    assert not cycle, " -> ".join(cycle)


def test_detection_does_not_depend_on_training():
    for module, targets in import_graph().items():
        if subpackage(module) in ("inference", "spotting", "features", "faces", "data", "models", "layers",
                                  "evaluation"):
            bad = sorted(t for t in targets if subpackage(t) == "training")
            assert not bad, f"{module} imports {bad}"


def test_spotting_methods_sit_below_detection():
    """Spotting methods turn per-frame evidence into intervals; ``inference`` (the detect tool)
    wires them to a video, so the methods never import it."""
    for module, targets in import_graph().items():
        if subpackage(module) == "spotting":
            bad = sorted(t for t in targets if subpackage(t) in ("inference", "training"))
            assert not bad, f"{module} imports {bad}"
