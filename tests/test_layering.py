"""The package forms layers: no import cycle between packages, no import from a higher layer."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "depthlab"

# From the ground up; a unit may import only units in its own layer or below. `train` sits above
# `inference` and `eval` because the loop evaluates through them.
LAYERS = (
    ("errors", "config", "__init__"),
    ("targets", "losses"),
    ("models",),
    ("teachers", "heads", "encoders"),
    ("data", "world"),
    ("recipes",),
    ("inference", "eval"),
    ("train",),
    ("run", "run_dir", "predict", "evaluate", "sweep", "analysis", "testing", "__main__"),
)
LAYER_OF = {unit: index for index, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    """`depthlab.models.backbone` -> `models`; `depthlab.run` -> `run`; `depthlab` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """depthlab modules imported by `path` at module level or inside functions (not under
    `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else \
        module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.add(name)
            found |= {f"{name}.{alias.name}" for alias in node.names}
    return {m for m in found if m == "depthlab" or m.startswith("depthlab.")}


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = unit_of(module_name(path))
        targets = {unit_of(m) for m in imported_modules(path)} - {source}
        graph.setdefault(source, set()).update(t for t in targets if t != "__init__")
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "active"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "active":
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_scan_sees_imports():
    graph = unit_graph()
    assert "models" in graph["recipes"] and "recipes" in graph["train"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_packages():
    cycle = find_cycle(unit_graph())
    assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("unit", sorted(unit_graph()))
def test_imports_stay_in_lower_layers(unit):
    assert unit in LAYER_OF, f"depthlab.{unit} is in no layer of {__file__}"
    upward = sorted(t for t in unit_graph()[unit] if LAYER_OF.get(t, -1) > LAYER_OF[unit])
    assert not upward, f"depthlab.{unit} imports the higher layer(s) {upward}"
