"""The package's layers, checked: no import cycles (module-level or inside functions), and no module imports
a layer above its own. The layers and their rules are written out in docs/architecture.md."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "workbench"

# Lowest first. A module is in the layer of its longest matching prefix.
LAYERS = {
    0: ["workbench.errors", "workbench.interrupts", "workbench.names", "workbench.provenance", "workbench.safeyaml",
        "workbench.limits",
        "workbench.locks", "workbench.config", "workbench.resources", "workbench.images", "workbench.tracking",
        "workbench.cluster"],
    1: ["workbench.store", "workbench.artifacts", "workbench.lineage", "workbench.jobs", "workbench.retention"],
    2: ["workbench.faces", "workbench.models", "workbench.packs", "workbench.selfies", "workbench.metrics",
        "workbench.likeness", "workbench.generate", "workbench.arms", "workbench.report", "workbench.protocol"],
    3: ["workbench.chain", "workbench.studies", "workbench.demo"],
    4: ["workbench.cli", "workbench.app", "workbench.reference"],
}
PUBLIC_API = "workbench"  # the package itself: its names load lazily, for front ends and notebooks


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every workbench module ``name`` imports, at module level or inside a function."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(parts + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("workbench"):
                continue
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("workbench")}
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def layer_of(name: str) -> int | None:
    best = None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (layer, len(prefix))
    return None if best is None else best[0]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_known_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_every_module_has_a_layer():
    unplaced = [name for name in modules() if name != PUBLIC_API and layer_of(name) is None]
    assert unplaced == [], "place these modules in a layer (tests/test_layers.py and docs/architecture.md)"


def test_no_module_imports_a_layer_above_its_own():
    violations = []
    for name, targets in graph().items():
        if name == PUBLIC_API:
            continue
        for target in targets:
            if target != PUBLIC_API and layer_of(target) > layer_of(name):
                violations.append(f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})")
    assert violations == []
