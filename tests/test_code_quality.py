"""Lint, format, types and the import contracts between layers."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"
#: The only engine modules allowed to import torch: training and the built-in model build.
TORCH_ALLOWED = {ENGINE / "models" / "builtin" / "build.py"}
TORCH_ALLOWED_DIRS = {ENGINE / "training"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_engine_never_imports_qt():
    offenders = [p for p in ENGINE.rglob("*.py") if _imports(p) & {"PySide6", "PyQt5", "PyQt6", "desktop_app"}]
    assert offenders == []


def test_torch_only_in_training_and_the_builtin_build():
    offenders = [
        p
        for p in ENGINE.rglob("*.py")
        if "torch" in _imports(p) and p not in TORCH_ALLOWED and not any(d in p.parents for d in TORCH_ALLOWED_DIRS)
    ]
    assert offenders == []


def test_indexing_and_search_do_not_load_torch():
    code = "import sys, engine.cli, engine.library; assert 'torch' not in sys.modules, 'torch loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_starting_the_engine_does_not_import_the_onnx_package():
    # The onnx package costs ~0.6 s to import; only large libraries' 8-bit index builds a graph
    # with it (ONNX Runtime itself is needed and is a different package).
    code = "import sys, engine.cli, engine.library; assert 'onnx' not in sys.modules, 'onnx imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed")
    return found


def test_ruff_lint():
    result = subprocess.run([_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format():
    result = subprocess.run([_tool("ruff"), "format", "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_engine():
    result = subprocess.run([_tool("mypy"), "engine"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
