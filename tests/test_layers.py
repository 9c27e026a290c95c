"""The layer order of docs/design.md holds: no module imports a module of a higher layer, and no import cycle.

Every import counts, including imports inside functions and under TYPE_CHECKING: a lazy import is still a
dependency a reader must follow.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Top to bottom; a module may import its own layer's modules and any lower layer's.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("commands", ("train", "evaluate", "randomized_metric_helper", "visualize_hd", "sweep", "runs", "import_policy",
                  "reproduce")),
    ("jobs", ("utils.jobs",)),
    ("pictures", ("utils.pictures",)),
    ("analysis", ("utils.analysis",)),
    ("models", ("models",)),
    ("ground", ("utils.geometry", "envs", "utils.runs", "utils.settings", "utils.flags", "utils.progress")),
    ("errors", ("utils.errors",)),
]
# Packages that sit on one floor but must not know each other (models knows no run store and no wandb).
FORBIDDEN = {"models": ("utils.runs.store", "utils.runs.tracking", "wandb")}


def project_modules() -> dict[str, Path]:
    """{dotted module name: file} of the library and the command lines (tests and benchmarks excluded)."""
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("tests", "benchmarks", "examples", "scripts") or any(p.startswith(".") for p in rel.parts):
            continue
        name = ".".join(rel.with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def imported_names(path: Path) -> set[str]:
    """Every absolute module name imported anywhere in the file (`from a.b import c` gives a.b and a.b.c)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def layer_of(module: str) -> int | None:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def dependency_graph() -> dict[str, set[str]]:
    """{module: the project modules it imports}."""
    modules = project_modules()
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in imported_names(path) if m in modules and m != name}
    return graph


def test_every_project_module_has_a_layer():
    assert [m for m in project_modules() if m != "utils" and layer_of(m) is None] == []


def test_no_module_imports_a_higher_layer():
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
              for m, deps in dependency_graph().items() for d in deps
              if layer_of(m) is not None and layer_of(d) is not None and layer_of(d) < layer_of(m)]
    assert upward == []


def test_models_know_no_run_store_and_no_wandb():
    modules = project_modules()
    bad = [f"{m} imports {name}" for m, path in modules.items() for package, banned in FORBIDDEN.items()
           if m.startswith(package + ".") for name in imported_names(path)
           if any(name == b or name.startswith(b + ".") for b in banned)]
    assert bad == []


def test_no_import_cycles():
    graph = dependency_graph()
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
