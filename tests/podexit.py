"""Ending pods when told, on the embedded cluster (hack/kwok/pod-exit.yaml) and on kind.

KWOK leaves every pod Running until it carries `kwok.kubeplane.dev/exit-code`; then it ends the pod's
containers with that code (phase Succeeded for 0, Failed otherwise). `end_pod` sets it on one pod; with
`real=True` (kind) it asks the e2e workload (tests/e2e/httpserver) in the pod to exit with the code,
through the API server's pod proxy (`GET /exit?code=N`), so a real container ends with it;
`JobPodsFinish` is the stand-in for work that finishes: while it is open, a thread ends every Running
pod a Job made in a namespace (the chart's `helm test` hook and MinIO's bucket Job, for example).

    with JobPodsFinish(kubectl, namespace):
        helm("test", ...)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from tests.kubectl import Result

EXIT_CODE = "kwok.kubeplane.dev/exit-code"
EXIT_AFTER = "kwok.kubeplane.dev/exit-after"
# Set by the Job controller (batch/v1, Kubernetes >= 1.27) on every pod it makes.
JOB_POD = "batch.kubernetes.io/job-name"

Run = Callable[..., Result]


def end_pod(kubectl: Run, namespace: str, name: str, exit_code: int = 0, *, real: bool = False,
            port: int = 8080) -> None:
    if real:
        kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/{name}:{port}/proxy/exit?code={exit_code}")
        return
    kubectl("-n", namespace, "annotate", "pod", name, f"{EXIT_CODE}={exit_code}", "--overwrite")


class JobPodsFinish:
    def __init__(self, kubectl: Run, namespace: str, exit_code: int = 0, interval: float = 0.5) -> None:
        self.kubectl, self.namespace, self.exit_code, self.interval = kubectl, namespace, exit_code, interval
        self.ended: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"end Job pods in {namespace}")

    def __enter__(self) -> JobPodsFinish:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            listed = self.kubectl("-n", self.namespace, "get", "pods", "-l", JOB_POD, "-o", "json", check=False)
            if listed.returncode != 0:
                continue  # the namespace may not exist yet, or is going away
            pods: list[dict[str, Any]] = json.loads(listed.stdout)["items"]
            for pod in pods:
                meta = pod["metadata"]
                if pod.get("status", {}).get("phase") == "Running" and EXIT_CODE not in meta.get("annotations", {}):
                    done = self.kubectl("-n", self.namespace, "annotate", "pod", meta["name"],
                                        f"{EXIT_CODE}={self.exit_code}", check=False)
                    if done.returncode == 0:
                        self.ended.append(meta["name"])
