"""The trainer's packages form layers, and imports only point down (or stay in their layer):

    common < data < features < model < training < prediction < export < cli

``common`` imports nothing above it; ``data`` never imports ``training``; ``model`` never imports
``training``; nothing imports ``trainer.cli`` (the console scripts, with ``trainer.sort_cli``, sit on top). Imports inside
functions count; imports under ``if TYPE_CHECKING:`` do not, because they never run (they name
types for readers and checkers, not dependencies).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "trainer"
LAYERS = ("common", "data", "features", "model", "training", "prediction", "export", "cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int | None:
    """The layer of a ``trainer`` module; None for the package root (the version string)."""
    parts = module.split(".")
    if module in ("trainer.cli", "trainer.sort_cli", "trainer.export.cli"):
        return LAYERS.index("cli")
    if len(parts) < 2 or parts[1] not in LAYERS:
        return None
    return LAYERS.index(parts[1])


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return skipped


def imports_of(source: str) -> set[str]:
    tree = ast.parse(source)
    skipped = _type_checking_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if name == "trainer" or name.startswith("trainer.")}


def upward_imports(sources: dict[str, str]) -> list[str]:
    """Every import from a module to a higher layer, as "module -> target"."""
    modules = set(sources)
    problems = []
    for name, source in sources.items():
        mine = layer_of(name)
        for target in sorted(imports_of(source)):
            if target not in modules:  # ``from trainer.x import name`` also lists ``trainer.x.name``
                continue
            theirs = layer_of(target)
            if target == "trainer.cli" and name != "trainer.cli":
                problems.append(f"{name} -> {target} (nothing imports the CLI)")
            elif mine is not None and theirs is not None and theirs > mine:
                problems.append(f"{name} -> {target} ({LAYERS[mine]} imports {LAYERS[theirs]})")
    return problems


def trainer_sources() -> dict[str, str]:
    return {module_name(p): p.read_text() for p in PACKAGE.rglob("*.py")}


def test_the_graph_is_real():
    sources = trainer_sources()
    assert "trainer.training.experiment" in sources
    assert "trainer.features.registry" in imports_of(sources["trainer.training.experiment"])
    assert layer_of("trainer.common.configs") == 0 and layer_of("trainer.cli") == len(LAYERS) - 1


def test_imports_only_point_down():
    assert upward_imports(trainer_sources()) == []


@pytest.mark.parametrize(
    ("module", "planted"),
    [
        ("trainer.common.events", "from trainer.model.results import RunResult"),
        ("trainer.data.dataset", "from trainer.training import experiment"),
        ("trainer.model.model_file", "def later():\n    from trainer.training.results import x"),
        ("trainer.export.onnx_export", "import trainer.cli"),
    ],
)
def test_a_planted_upward_import_is_caught(module: str, planted: str):
    sources = trainer_sources()
    sources[module] += "\n" + planted + "\n"
    if "training.results" in planted:  # a module that no longer exists still names the package
        sources["trainer.training.results"] = ""
    assert upward_imports(sources), planted


def test_type_only_imports_do_not_count():
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from trainer.model.results import R\n"
    assert imports_of(source) == set()
