"""The import rules of the design, read from the source (no module is imported):

* both sides share only ``wire/``: the centre (``dashboard/``) never imports the kiosk (``edge/``),
  the kiosk never imports the centre, and ``wire/`` imports neither;
* on the kiosk, imports flow one way: camera -> quality -> classifier -> outbox -> link (a package
  may import those before it, never those after it);
* no import cycles between the modules of ``edge``, ``dashboard`` and ``wire``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "dashboard", "wire")
KIOSK_FLOW = ("camera", "quality", "classifier", "outbox", "link")


def module_name(path: Path) -> str:
    """``edge/link/core.py`` -> ``edge.link.core``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (at any depth: lazy imports inside functions count), absolute."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            out.add(prefix)
            out.update(f"{prefix}.{a.name}" for a in node.names)  # ``from pkg import module``
    return out


def sources() -> dict[str, set[str]]:
    """Each module of the three packages -> the modules of the three packages it imports."""
    mods = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in mods} for name, path in mods.items()}


GRAPH = sources()


def test_the_parser_sees_the_imports_it_is_meant_to_police():
    assert "wire.kioskconfig" in GRAPH["dashboard.updates"]      # a lazy import inside a function
    assert "edge.link.settings" in GRAPH["edge.link.core"]       # a relative import
    assert len(GRAPH) > 150


@pytest.mark.parametrize("side,forbidden", [("dashboard", "edge"), ("edge", "dashboard"),
                                            ("wire", "edge"), ("wire", "dashboard")])
def test_the_two_sides_share_only_wire(side, forbidden):
    bad = sorted(f"{m} imports {i}" for m, deps in GRAPH.items() if m.split(".")[0] == side
                 for i in deps if i.split(".")[0] == forbidden)
    assert bad == []


def test_the_kiosk_pipeline_imports_flow_one_way():
    rank = {f"edge.{name}": i for i, name in enumerate(KIOSK_FLOW)}

    def stage(module: str) -> str | None:
        return next((s for s in rank if module == s or module.startswith(s + ".")), None)

    bad = sorted(f"{m} imports {i}" for m, deps in GRAPH.items() for i in deps
                 if stage(m) and stage(i) and rank[stage(i)] > rank[stage(m)])
    assert bad == []


def test_no_import_cycles():
    """Tarjan's strongly connected components over the module graph: each must be one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            # a package's __init__ re-exporting its own submodules is not a cycle of design
            if w.startswith(v + "."):
                continue
            if w not in index:
                visit(w)
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
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert cycles == []
