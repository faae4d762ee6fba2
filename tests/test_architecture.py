"""The parts' import order (DESIGN §2) and the absence of import cycles, read from the source.

Every ``import`` counts, at module level or inside a function, so a function-level import cannot
hide a cycle or a wrong-way dependency. Imports under ``if TYPE_CHECKING:`` do not run and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("aees_gym", "agents")

#: Layer of each part, from the bottom up: a module may import its own layer and the ones below.
LAYERS = {
    "aees_gym.core": 0,
    "aees_gym.tasks": 1,
    "aees_gym.envs": 2,
    "aees_gym.suite": 3,
    "aees_gym.reporting": 4,
    "aees_gym.cli": 5,
    "aees_gym": 5,  # the package's re-exports
    "agents": 6,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def layer(module: str) -> int:
    best = max((prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")), key=len)
    return LAYERS[best]


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    return skipped


def imports_of(path: Path, modules: dict[str, Path], name: str | None = None) -> set[str]:
    """The project modules ``path`` imports (the submodule when one is named, else the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module for alias in node.names]
        else:
            continue
        found |= {name for name in names if name.split(".")[0] in PACKAGES}
    found.discard(name or module_name(path))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = source_modules()
    return {name: {m for m in imports_of(path, modules) if m in modules} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, …, a]``, or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_every_import_respects_the_layers() -> None:
    wrong = [
        f"{source} ({layer(source)}) imports {target} ({layer(target)})"
        for source, targets in import_graph().items()
        for target in sorted(targets)
        if layer(target) > layer(source)
    ]
    assert not wrong, "imports against the layer order of DESIGN §2:\n" + "\n".join(wrong)


def test_the_checks_see_function_level_imports_and_cycles(tmp_path: Path) -> None:
    """The checker itself: a function-level import that closes a cycle is found."""
    graph = {"aees_gym.core.a": {"aees_gym.core.b"}, "aees_gym.core.b": {"aees_gym.core.a"}}
    assert find_cycle(graph) == ["aees_gym.core.a", "aees_gym.core.b", "aees_gym.core.a"]
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from aees_gym.suite import agent_registry\n")
    modules = {"aees_gym.suite.agent_registry": sample}
    assert imports_of(sample, modules, "aees_gym.core.sample") == {"aees_gym.suite.agent_registry"}


@pytest.mark.parametrize("part", ["aees_gym.core", "aees_gym.tasks", "aees_gym.envs"])
def test_lower_parts_never_import_suite_reporting_or_agents(part: str) -> None:
    graph = import_graph()
    offending = {
        (source, target)
        for source, targets in graph.items()
        if source.startswith(part)
        for target in targets
        if target.split(".")[0] == "agents" or target.startswith(("aees_gym.suite", "aees_gym.reporting", "aees_gym.cli"))
    }
    assert not offending
