"""docs/design/api.md is the committed copy of the public contract the security suite reads.

The design folder sits next to the repository on a developer's machine, not in a CI clone: where
it is present, the copy must not have drifted from it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COPY = ROOT / "docs" / "design" / "api.md"
SOURCE = ROOT.parent / "shared" / "design" / "api.md"


def test_the_contract_copy_is_committed() -> None:
    assert "## Orders (order service)" in COPY.read_text()


@pytest.mark.skipif(not SOURCE.exists(), reason="no design folder next to this clone")
def test_the_copy_matches_the_design_folder() -> None:
    assert COPY.read_text() == SOURCE.read_text(), "copy ../shared/design/api.md to docs/design/"
