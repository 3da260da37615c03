"""The operator image (`make image`): it runs the CLI, as uid 65532, on a read-only root filesystem.

Needs a Docker engine (`docker info`). Without one the tests skip, unless KUBEPLANE_REQUIRE_DOCKER=1
(then they fail). The image kubeplane:<version> is built with hack/image.sh only when it is missing
(a few minutes cold; cached afterwards); otherwise the existing image is tested as it is, so run
`make image` after changing the code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"{os.environ.get('IMAGE_REPO', 'kubeplane')}:{VERSION}"


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def _docker_unavailable() -> str | None:
    """Why Docker can't be used here, or None when `docker info` works."""
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    try:
        info = docker("info", timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` timed out"
    if info.returncode != 0:
        hint = "no engine running? ../shared/sandbox/start-docker starts one"
        return f"`docker info` failed ({hint}): {info.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="module")
def image() -> str:
    reason = _docker_unavailable()
    if reason:
        if os.environ.get("KUBEPLANE_REQUIRE_DOCKER") == "1":
            pytest.fail(f"KUBEPLANE_REQUIRE_DOCKER=1 but Docker is unavailable: {reason}")
        pytest.skip(f"Docker is unavailable ({reason}); set KUBEPLANE_REQUIRE_DOCKER=1 to make this a failure")
    if docker("image", "inspect", IMAGE).returncode != 0:
        build = subprocess.run([str(ROOT / "hack/image.sh")], cwd=ROOT, capture_output=True, text=True, timeout=1800)
        assert build.returncode == 0, f"hack/image.sh failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    return IMAGE


def test_help(image: str) -> None:
    result = docker("run", "--rm", image, "kubeplane", "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: kubeplane" in result.stdout
    assert "run" in result.stdout


def test_version_matches_pyproject(image: str) -> None:
    result = docker("run", "--rm", image, "kubeplane", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"kubeplane, version {VERSION}"


def test_runs_as_uid_65532(image: str) -> None:
    user = docker("image", "inspect", "--format", "{{.Config.User}}", image)
    assert user.stdout.strip() == "65532:65532"
    ids = docker("run", "--rm", image, "id")
    assert ids.returncode == 0, ids.stderr
    assert ids.stdout.startswith("uid=65532(kubeplane) gid=65532(kubeplane)"), ids.stdout


def test_read_only_root_filesystem(image: str) -> None:
    # As in the chart: read-only root fs. The operator's imports must not try to write (.pyc files).
    result = docker("run", "--rm", "--read-only", "--user", "65532", image, "kubeplane", "run", "--help")
    assert result.returncode == 0, result.stderr
    assert "Run one operator" in result.stdout
    assert "Read-only file system" not in result.stderr
