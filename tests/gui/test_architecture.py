"""The layout shows the architecture: no import circles, tabs independent, no trainer.cli."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "facecomic_gui"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):  # imports inside functions count too
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                if (target in modules and target != name) or target.startswith("trainer"):
                    graph[name].add(target)
    return graph


def test_the_graph_is_real():
    graph = import_graph()
    assert "facecomic_gui.main_window" in graph
    assert "facecomic_gui.train.session" in graph["facecomic_gui.train.tab"]


def test_no_import_cycles():
    graph = {k: {t for t in v if t.startswith("facecomic_gui")} for k, v in import_graph().items()}
    # The package's own __init__ is imported by every submodule; it imports only trainer.
    assert graph["facecomic_gui"] == set()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(node) :], node]))
        if node in done:
            return
        for target in graph.get(node, ()):
            visit(target, [*path, node])
        done.add(node)

    for node in graph:
        visit(node, [])


def test_tabs_do_not_import_each_other_and_no_gui_module_imports_the_cli():
    for name, targets in import_graph().items():
        assert "trainer.cli" not in targets, name
        if name.startswith("facecomic_gui.train"):
            assert not any(t.startswith("facecomic_gui.predict") for t in targets), name
        if name.startswith("facecomic_gui.predict"):
            assert not any(t.startswith("facecomic_gui.train") for t in targets), name
        if name.startswith("facecomic_gui.runs"):
            assert not any(t.startswith(("facecomic_gui.train", "facecomic_gui.predict")) for t in targets), (
                name
            )


def test_shared_modules_import_no_tab():
    """``facecomic_gui.common`` serves every tab, so it imports none of them (its settings once
    imported the Train tab's form)."""
    for name, targets in import_graph().items():
        if name.startswith("facecomic_gui.common"):
            tabs = [
                t
                for t in targets
                if t.startswith(("facecomic_gui.train", "facecomic_gui.predict", "facecomic_gui.runs"))
            ]
            assert tabs == [], name


def test_sessions_import_no_qt_module():
    for name in (
        "facecomic_gui.train.session",
        "facecomic_gui.train.form",
        "facecomic_gui.train.gallery_session",
        "facecomic_gui.predict.session",
        "facecomic_gui.runs.session",
        "facecomic_gui.common.corrections",
        "facecomic_gui.predict.sort_session",
        "facecomic_gui.predict.review",
    ):
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            todo += [t for t in import_graph().get(current, ()) if t.startswith("facecomic_gui")]
        qt_modules = {m for m in seen if m.split(".")[-1] in ("tab", "table", "widgets", "plots", "worker")}
        assert qt_modules == set(), name


def test_no_class_in_the_gui_is_over_300_lines():
    """Long widgets hide what they do; the tabs are assembled from parts (``train/run_panel.py``,
    ``train/results_panel.py``, ``predict/parts.py``) instead."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 300:
                long.append(f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []
