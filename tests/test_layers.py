"""The package's arrows point down: spec -> plan -> train -> store -> zoo -> weight structure ->
datasets -> science layer -> CLI, with a shared vocabulary (errors, registries, architectures,
metric definitions) underneath. Every import in every module (including imports inside
functions and under TYPE_CHECKING) is read from the source with ``ast`` and checked against the
layer table of docs/layout.md, and the module graph must have no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "modelzoo"

# level of each module (a prefix matches a whole package); lower levels never import higher ones
LEVELS = {
    "modelzoo._version": 0,
    "modelzoo.errors": 0,
    "modelzoo.seeding": 0,
    "modelzoo._torchvision": 0,
    "modelzoo._lazy": 0,
    "modelzoo.resnet": 0,  # torch only; architectures builds it by name (importlib)
    "modelzoo.devices": 1,
    "modelzoo.yamlfile": 1,  # the YAML reader every user-written file goes through
    "modelzoo.architectures": 1,
    "modelzoo.data": 1,
    "modelzoo.optim": 1,
    "modelzoo.init": 2,
    "modelzoo.nets": 2,
    "modelzoo.evaluation": 2,
    "modelzoo.spec": 3,
    "modelzoo.plan": 4,
    "modelzoo.train": 5,
    "modelzoo.store": 6,
    "modelzoo.run": 7,  # the scheduler: drives train/ and the writer
    "modelzoo.estimate": 7,
    "modelzoo.zoo": 7,  # the read side: never imports the scheduler
    "modelzoo.outdir": 7,  # the --out rules and work folder every science command shares (store lock)
    "modelzoo.tokens": 8,  # weight structure: reads architecture plans, not Zoo
    "modelzoo.augment": 9,
    "modelzoo.dataset": 10,
    "modelzoo.hyperrep": 11,  # the science layer
    "modelzoo.publish": 11,
    "modelzoo.sparsify": 11,  # sparse twins: continues a zoo's models with the trainers' parts
    "modelzoo.probe": 12,  # reads train-ae run folders for embedding features
    "modelzoo.sample": 12,  # decodes with train-ae autoencoders
    "modelzoo.fidelity": 13,  # builds on probe
    "modelzoo.cli": 14,
    "modelzoo": 15,  # __init__: the facade (lazy exports of open_zoo, Zoo, ZooDataset)
}
SCIENCE = ("modelzoo.probe", "modelzoo.hyperrep", "modelzoo.sample", "modelzoo.publish",
           "modelzoo.fidelity", "modelzoo.sparsify")  # fmt: skip
SCHEDULER = ("modelzoo.run", "modelzoo.estimate", "modelzoo.plan")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _family(name: str) -> str:
    """The most specific key of LEVELS that covers ``name``."""
    best = ""
    for key in LEVELS:
        if (name == key or name.startswith(key + ".")) and len(key) > len(best):
            best = key
    assert best, f"{name} is not in the layer table of tests/test_layers.py (docs/layout.md)"
    return best


def _imports(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("modelzoo"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("modelzoo"):
                found.add(target)
                # "from . import format" names a module, not an attribute
                for alias in node.names:
                    candidate = f"{target}.{alias.name}"
                    if (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists():
                        found.add(candidate)
    return found


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if ".venv" in path.parts or "specs" in path.parts:
            continue
        name = _module_name(path)
        graph[name] = {i for i in _imports(path, name) if i != name}
    return graph


def test_every_import_points_down_or_stays_in_its_package() -> None:
    wrong = []
    for source, targets in _graph().items():
        mine = _family(source)
        for target in targets:
            theirs = _family(target)
            if theirs == mine:
                continue
            if LEVELS[theirs] >= LEVELS[mine]:
                wrong.append(f"{source} (level {LEVELS[mine]}) imports {target} "
                             f"(level {LEVELS[theirs]})")  # fmt: skip
    assert wrong == []


def test_the_science_layer_never_imports_the_scheduler() -> None:
    wrong = [
        f"{source} imports {target}"
        for source, targets in _graph().items()
        if source.startswith(SCIENCE)
        for target in targets
        if target.startswith(SCHEDULER)
    ]
    assert wrong == []


def test_the_module_graph_has_no_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, trail: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle.extend([*trail, node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, [*trail, node]):
                return True
        state[node] = 2
        return False

    for node in sorted(graph):
        if state.get(node) is None and visit(node, []):
            break
    assert cycle == []


def test_the_checker_sees_upward_and_function_level_imports(tmp_path: Path) -> None:
    """The checker itself: an import inside a function, relative and two levels up, is found."""
    module = PACKAGE / "store" / "reader.py"
    found = _imports(module, "modelzoo.store.reader")
    assert "modelzoo.architectures" in found and "modelzoo.store.format" in found
    fake = tmp_path / "fake.py"
    fake.write_text("def f():\n    from ..dataset import ZooDataset\n")
    assert _imports(fake, "modelzoo.store.fake") == {"modelzoo.dataset"}
