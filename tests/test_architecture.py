"""The architecture holds, and its checks would notice if it did not.

The rules are import-linter contracts in ``pyproject.toml`` (run by ``make lint``; described in
docs/architecture.md): trainer's layers, no GUI or Qt in trainer, independent tabs, the GUI's
layers, Qt-free sessions, no import cycles. Each is run here on the real tree, then on a copy with
one deliberate violation planted, which must break exactly that contract. Beside them, two size
rules that keep modules and widgets readable.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 300


def lint_imports(root: Path, *contracts: str) -> tuple[int, str]:
    """Run the contracts of ``root/pyproject.toml`` on the packages under ``root``."""
    args = [str(LINT_IMPORTS), "--no-logo", "--no-cache", *(f"--contract={c}" for c in contracts)]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, done.stdout + done.stderr


def contract_ids() -> list[str]:
    return re.findall(r'^id = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)


def test_every_contract_holds():
    code, report = lint_imports(REPO)
    assert code == 0, report
    assert f"Contracts: {len(contract_ids())} kept, 0 broken." in report


# One planted violation per contract: (file, line added, the contract it must break).
PLANTED = [
    ("trainer/common/events.py", "from trainer.model.results import RunResult", "trainer-layers"),
    ("trainer/data/walk.py", "from trainer.training import experiment", "trainer-layers"),
    ("trainer/model/linear.py", "def later():\n    import PySide6.QtCore", "trainer-has-no-gui"),
    ("trainer/prediction/export.py", "from facecomic_gui.common import widgets", "trainer-has-no-gui"),
    ("facecomic_gui/runs/session.py", "from facecomic_gui.train import form", "gui-tabs-independent"),
    ("facecomic_gui/predict/tab.py", "from trainer import cli", "gui-not-the-cli"),
    ("trainer/features/cache.py", "from trainer.features import base", "no-cycles"),
    ("trainer/prediction/predictor.py", "def later():\n    import distributed", "cluster-optional"),
    ("facecomic_gui/predict/session.py", "from trainer.cluster import engine", "cluster-optional"),
    ("facecomic_gui/common/settings.py", "from facecomic_gui.train import form", "gui-layers"),
    ("facecomic_gui/train/session.py", "from PySide6.QtCore import QObject", "sessions-without-qt"),
]


def test_every_contract_has_a_planted_violation():
    assert {contract for *_, contract in PLANTED} == set(contract_ids())


@pytest.mark.parametrize(("path", "line", "contract"), PLANTED, ids=[f"{c}:{p}" for p, _, c in PLANTED])
def test_a_planted_violation_breaks_its_contract(tmp_path: Path, path: str, line: str, contract: str):
    for package in ("trainer", "facecomic_gui"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    code, report = lint_imports(tmp_path, contract)
    assert code == 0, report  # the copy holds before the plant
    with open(tmp_path / path, "a") as file:
        file.write("\n" + line + "\n")
    code, report = lint_imports(tmp_path, contract)
    assert code != 0 and "0 kept, 1 broken" in report, report


def python_files() -> list[Path]:
    return sorted(p for package in ("trainer", "facecomic_gui") for p in (REPO / package).rglob("*.py"))


def test_no_class_in_the_gui_is_over_300_lines():
    """Long widgets hide what they do; the tabs are assembled from parts (``train/run_panel.py``,
    ``train/results_panel.py``, ``predict/parts.py``) instead."""
    long = []
    for path in (REPO / "facecomic_gui").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                long.append(f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []


def test_no_module_is_over_500_lines():
    """Split along the seams instead: a name that says what the part holds."""
    long = [
        f"{p.relative_to(REPO)} ({n})"
        for p in python_files()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert long == []
