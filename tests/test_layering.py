"""Imports go one way: every import of every module of shiftlab, function-local ones included,
points at its own layer or one below (docs/design.md, "Layers"), and no modules import each
other in a circle. Registries find their members by module name (Registry.discover): that is
the one lookup that runs from a low layer to the method packages, and it is not an import
statement."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: Top to bottom, as docs/design.md lists them; a module may import its own layer and below.
LAYERS = [
    ["shiftlab.cli"],
    ["shiftlab.commands", "shiftlab.compare", "shiftlab.runner"],
    ["shiftlab.driver", "shiftlab.tracking"],
    ["shiftlab.report"],
    ["shiftlab.executors"],
    ["shiftlab.stages"],
    ["shiftlab.session", "shiftlab.testing"],
    ["shiftlab.store", "shiftlab.checks", "shiftlab.jobs", "shiftlab.entries", "shiftlab.seeds"],
    ["shiftlab.curation", "shiftlab.unlearn"],
    ["shiftlab.finetune", "shiftlab.adapt", "shiftlab.membership"],
    ["shiftlab.lm.audit", "shiftlab.lm.transforms", "shiftlab.lm.conjugate"],
    ["shiftlab.training"],
    ["shiftlab.evaluate"],
    ["shiftlab.features"],
    ["shiftlab.lm"],
    ["shiftlab.models"],
    ["shiftlab.predictions"],
    ["shiftlab.data"],
    ["shiftlab.config"],
    ["shiftlab.config.sections"],
    ["shiftlab.typed", "shiftlab.registry"],
    [
        "shiftlab",
        "shiftlab.errors",
        "shiftlab.files",
        "shiftlab._optional",
        "shiftlab.runtime",
        "shiftlab.progress",
        "shiftlab.atomic",
        "shiftlab.faults",
        "shiftlab.hub",
        "shiftlab.precision",
        "shiftlab.distributed",
        "shiftlab.exported",
    ],
]


def modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "shiftlab").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The shiftlab modules ``name`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # ``from pkg import submodule`` imports the submodule; ``from mod import name``, mod
            targets = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                for a in node.names
            ]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("shiftlab") and target != name:
                found.add(target)
    return found


def layer(name: str) -> int:
    best = max(
        ((i, len(p)) for i, group in enumerate(LAYERS) for p in group
         if name == p or name.startswith(p + ".")),
        key=lambda found: found[1],
    )  # fmt: skip
    return best[0]


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_every_module_has_a_layer():
    for name in modules():
        layer(name)  # raises if no layer holds it


def test_no_module_imports_a_higher_layer():
    upward = [
        f"{a} -> {b}" for a, targets in graph().items() for b in targets if layer(b) < layer(a)
    ]
    assert not upward, "imports that run up the layers:\n" + "\n".join(sorted(upward))


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
