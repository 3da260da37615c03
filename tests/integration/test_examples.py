"""Every manifest in examples/ is accepted by the real API server (`kubectl apply --dry-run=server`,
CRD schemas and CEL rules included), so the README's walk-throughs never start with an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ROOT, kubectl

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_accepted(cluster: Any, path: Path) -> None:
    # Dry run: nothing is created; objects without a namespace are checked against `default`.
    result = kubectl("apply", "--dry-run=server", "-f", str(path), check=False)
    assert result.returncode == 0, f"{path.name}:\n{result.stderr}"
