"""kubectl as the integration and e2e tiers drive it: the real binary in bin/, against one kubeconfig.

`Kubectl(env)` gives `run` (a command, failing the test with kubectl's stderr), `json` (`-o json`,
decoded) and `apply` (a manifest on stdin); `wait_for` polls a predicate with a deadline.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Result = subprocess.CompletedProcess[str]
BIN = Path(__file__).resolve().parents[1] / "bin"


class Kubectl:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)

    def run(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60) -> Result:
        result = subprocess.run(
            [str(BIN / "kubectl"), *args], input=input, capture_output=True, text=True, env=self.env,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def apply(self, manifest: dict[str, Any] | str, namespace: str | None = None, check: bool = True) -> Result:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        return self.run(*args, input=text, check=check)


def wait_for(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.25, what: str = "") -> Any:
    """Poll until `predicate()` is truthy and return it; fail with its last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate.__name__}; last: {last!r}")
