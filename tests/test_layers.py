"""The layering rule of docs/architecture.md, checked: `lint-imports` (import-linter) runs the
contracts in pyproject.toml over the import graph, function-level imports included."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_celeryconfig_reads_only_the_vocabulary_of_ours() -> None:
    tree = ast.parse((ROOT / "celeryconfig.py").read_text())
    ours = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.split(".")[0] in ("rudolph", "workers", "producer")
    }
    assert ours == {"rudolph.vocabulary"}
