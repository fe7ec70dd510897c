"""docs/compatibility.md is what the matrix declares (and test_matrix.py verifies)."""

from __future__ import annotations

from pathlib import Path

from tests.conformance.render import render

DOC = Path(__file__).parent.parent.parent / "docs" / "compatibility.md"


def test_compatibility_doc_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/compatibility.md is stale: run `python -m tests.conformance.render > docs/compatibility.md`"
    )
