"""The code base stays clean: ruff, mypy --strict, import-linter layer contracts, doc links."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*argv: str) -> None:
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"


def test_ruff_lint() -> None:
    _run(str(BIN / "ruff"), "check", ".")


def test_ruff_format() -> None:
    _run(str(BIN / "ruff"), "format", "--check", ".")


@pytest.mark.slow
def test_mypy_strict() -> None:
    _run(str(BIN / "mypy"))


def test_import_layers() -> None:
    _run(str(BIN / "lint-imports"))


def test_doc_references_exist() -> None:
    """Every repo path a Markdown file names in backticks exists (docs must not drift)."""
    missing = []
    for doc in [*ROOT.glob("*.md"), *ROOT.glob("app/**/*.md"), *ROOT.glob("docs/**/*.md")]:
        for ref in re.findall(
            r"`((?:app|tests|bench|packaging|resources|docs)/[\w./-]+)`", doc.read_text()
        ):
            if not (ROOT / ref).exists():
                missing.append(f"{doc.relative_to(ROOT)} -> {ref}")
    assert not missing, missing
