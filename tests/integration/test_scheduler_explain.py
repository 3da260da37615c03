"""`kubeplane scheduler explain` against the real cluster state."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.integration.conftest import ENV, ROOT


def explain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / ".venv/bin/kubeplane"), "scheduler", "explain", *args], capture_output=True,
                          text=True, env=ENV, timeout=60)


def test_dry_run_explains_a_pod_that_fits_nowhere(cluster: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: huge}\n"
        "spec: {containers: [{name: c, image: x, resources: {requests: {cpu: '1000'}}}]}\n"
    )
    result = explain("--dry-run", "-f", str(manifest), "-o", "json")
    assert result.returncode == 0, result.stderr
    explained = json.loads(result.stdout)
    assert explained["result"] == "Unschedulable"
    assert explained["message"].startswith(f"0/{explained['allNodes']} nodes are available:")
    assert all(n["outcome"] == "Rejected" and n["plugin"] == "NodeResourcesFit" for n in explained["nodes"].values())

    table = explain("--dry-run", "-f", str(manifest))
    assert "Insufficient cpu" in table.stdout and "NodeResourcesFit" in table.stdout


def test_dry_run_scores_feasible_nodes(cluster: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: small}\nspec: {containers: [{name: c, image: x}]}\n"
    )
    explained = json.loads(explain("--dry-run", "-f", str(manifest), "-o", "json").stdout)
    assert explained["result"] == "Success" and explained["node"]
    chosen = explained["nodes"][explained["node"]]
    assert chosen["total"] == max(n.get("total", -1) for n in explained["nodes"].values())
    assert "NodeResourcesFit" in chosen["scores"]


def test_usage_errors() -> None:
    assert explain().returncode != 0
