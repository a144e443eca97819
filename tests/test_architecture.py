"""The package's shape: layered imports (import-linter), no cycles dodged by local imports."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import config

HELPERS = config.PROJECT_ROOT / "helpers"


def test_layers_contract_is_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    res = subprocess.run([exe, "--config", str(config.PROJECT_ROOT / "pyproject.toml")], cwd=config.PROJECT_ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "1 kept, 0 broken" in res.stdout


def local_helper_imports() -> list[str]:
    """``path:line module`` of every ``helpers`` import inside a function body without a reason comment."""
    out = []
    for path in sorted(HELPERS.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for n in ast.walk(node):
                mod = n.module if isinstance(n, ast.ImportFrom) else None
                if mod and mod.startswith("helpers") and "start-up" not in lines[n.lineno - 1]:
                    out.append(f"{path.relative_to(config.PROJECT_ROOT)}:{n.lineno} {mod}")
    return out


def test_no_function_local_imports_of_helpers():
    # a helpers import inside a function is allowed only with a comment saying it is for start-up time
    assert local_helper_imports() == []
