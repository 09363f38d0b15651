"""The package's structure holds: entry points stay thin shells (no library module imports ``ece_lightning.cli``),
imports form no cycle (also through imports inside functions), and no module grows past the size that asks for
a split."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ece_lightning"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
MODULE_NAMES = set(MODULES)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """Modules of ece_lightning that ``path`` imports (``top_level_only``: those run when it is imported)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("ece_lightning")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("ece_lightning"):
                # ``from package import submodule`` depends on the submodule; any other name on the module itself.
                names = [f"{module}.{alias.name}" for alias in node.names]
                found |= {n for n in names if n in MODULE_NAMES}
                if any(n not in MODULE_NAMES for n in names):
                    found.add(module)
    return found




def test_no_library_module_imports_the_command_line_tools():
    offenders = {name: sorted(i for i in _imports(path, top_level_only=False) if i.startswith("ece_lightning.cli"))
                 for name, path in MODULES.items() if not name.startswith("ece_lightning.cli")}
    assert not {name: found for name, found in offenders.items() if found}


@pytest.mark.parametrize("top_level_only", [True, False], ids=["at import", "anywhere"])
def test_imports_have_no_cycle(top_level_only):
    graph = {name: {i for i in _imports(path, top_level_only) if i in MODULES and i != name}
             for name, path in MODULES.items()}
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_the_split_size(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name]} has {lines} lines: split it along its jobs"
