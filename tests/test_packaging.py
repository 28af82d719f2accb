"""The dependencies pyproject.toml declares are the ones the package imports (eager or lazy, inside functions)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DISTRIBUTION = {"sklearn": "scikit-learn", "flash_attn": "flash-attn", "yaml": "pyyaml"}  # import name -> package
NOT_IMPORTED = {
    "jsonargparse": "LightningCLI parses the configs with it",
    "tensorboard": "the TensorBoardLogger that configs/*.yaml name writes with it",
    "biopython": "pyfaidx reads bgzip FASTA (data/dmel_chr4_1.1-1.3Mb.fa.gz) through it",
}


def imported_packages(root: Path) -> set[str]:
    """Top-level names of every absolute import in the package, outside the standard library."""
    names = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {DISTRIBUTION.get(n, n).lower() for n in names - set(sys.stdlib_module_names) - {"genomenet"}}


def declared(requirements: list[str]) -> set[str]:
    return {re.match(r"[A-Za-z0-9_.-]+", r)[0].lower() for r in requirements}


def test_declared_dependencies_are_the_imported_ones() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = declared(project["dependencies"])
    extras = set().union(*(declared(v) for k, v in project["optional-dependencies"].items() if k != "test"))
    imported = imported_packages(REPO / "genomenet")
    assert imported - core - extras == set(), "imported but not declared"
    assert core - imported - set(NOT_IMPORTED) == set(), "declared but never imported"
    assert set(NOT_IMPORTED) <= core
